-- LIST_ITEMS: a page of the history's items, by sequence number, and one more to tell
-- whether another page follows.
--
-- KEYS[1] meta, KEYS[2] items
-- ARGV[1] now_ms, ARGV[2] the sequence the items come after, ARGV[3] the sequence they
-- come before or "" (no bound), ARGV[4] the page size, ARGV[5] "1" for newest first
-- -> {"OK", {item record, ...}} | {"NOT_FOUND"}

if not load_meta(KEYS[1], tonumber(ARGV[1])) then
  return {'NOT_FOUND'}
end
local low = '(' .. ARGV[2]
local high = ARGV[3] == '' and '+inf' or '(' .. ARGV[3]
local count = tonumber(ARGV[4]) + 1
if ARGV[5] == '1' then
  return {'OK', redis.call('ZRANGE', KEYS[2], high, low, 'BYSCORE', 'REV', 'LIMIT', 0, count)}
end
return {'OK', redis.call('ZRANGE', KEYS[2], low, high, 'BYSCORE', 'LIMIT', 0, count)}
