-- LIST_ITEMS: a page of the history's items, by sequence number, and one more to tell
-- whether another page follows; with the archived items of folded turns first, if asked
-- (they are all older than the history's).
--
-- KEYS[1] meta, KEYS[2] items, KEYS[3] archived_items
-- ARGV[1] now_ms, ARGV[2] the sequence the items come after, ARGV[3] the sequence they
-- come before or "" (no bound), ARGV[4] the page size, ARGV[5] "1" for newest first,
-- ARGV[6] "1" to include the archived items
-- -> {"OK", {item record, ...}} | {"NOT_FOUND"}

if not load_meta(KEYS[1], tonumber(ARGV[1])) then
  return {'NOT_FOUND'}
end
local low = '(' .. ARGV[2]
local high = ARGV[3] == '' and '+inf' or '(' .. ARGV[3]
local count = tonumber(ARGV[4]) + 1
local sets = {KEYS[2]}
if ARGV[6] == '1' then
  sets = ARGV[5] == '1' and {KEYS[2], KEYS[3]} or {KEYS[3], KEYS[2]}
end
local page = {}
for _, key in ipairs(sets) do
  local wanted = count - #page
  if wanted <= 0 then
    break
  end
  local found
  if ARGV[5] == '1' then
    found = redis.call('ZRANGE', key, high, low, 'BYSCORE', 'REV', 'LIMIT', 0, wanted)
  else
    found = redis.call('ZRANGE', key, low, high, 'BYSCORE', 'LIMIT', 0, wanted)
  end
  for _, record in ipairs(found) do
    page[#page + 1] = record
  end
end
return {'OK', page}
