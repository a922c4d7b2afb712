-- LIST_TURNS: up to a limit of turns from an index on, oldest or newest first, from
-- the history and, if asked, the archive.
--
-- KEYS[1] meta, KEYS[2] turns, KEYS[3] archive
-- ARGV[1] now_ms, ARGV[2] the first index or "" (the oldest, or the newest),
-- ARGV[3] limit, ARGV[4] "1" for newest first, ARGV[5] "1" to include archived turns
-- -> {"OK", the index where the next page starts (0: none), {index, turn, index, turn, ...}}
--  | {"NOT_FOUND"}

local m = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
local folded, total = number(m.folded_turns), tonumber(m.total_turns)
local lowest = folded + 1
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  lowest = 1
end
local limit = tonumber(ARGV[3])
local step = ARGV[4] == '1' and -1 or 1
local i = tonumber(ARGV[2])
if step == 1 then
  i = math.max(i or lowest, lowest)
else
  i = math.min(i or total, total)
end
local out, found = {}, 0
while found < limit and i >= lowest and i <= total do
  local last = i + step * (limit - found - 1)
  if i > folded then
    last = math.max(math.min(last, total), folded + 1)
    local low, high = math.min(i, last), math.max(i, last)
    -- Offsets from the tail, where recent turns are: Redis walks from the nearer end.
    local hot = total - folded
    local turns = redis.call('LRANGE', KEYS[2], low - folded - 1 - hot, high - folded - 1 - hot)
    local first, final = 1, #turns
    if step == -1 then
      first, final = #turns, 1
    end
    for k = first, final, step do
      out[#out + 1] = low + k - 1
      out[#out + 1] = turns[k]
    end
    found = found + #turns
  else
    -- The archive may lack indexes (folded while archiving was off).
    last = math.max(math.min(last, folded), lowest)
    local indexes = {}
    for j = i, last, step do
      indexes[#indexes + 1] = j
    end
    local turns = redis.call('HMGET', KEYS[3], unpack(indexes))
    for k = 1, #indexes do
      if turns[k] then
        out[#out + 1] = indexes[k]
        out[#out + 1] = turns[k]
        found = found + 1
      end
    end
  end
  i = last + step
end
if i < lowest or i > total then
  i = 0
end
return {'OK', i, out}
