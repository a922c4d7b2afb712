-- FOLD: folds the oldest turns into a new summary: they leave the history (into the
-- archive, or their request ids are forgotten).
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] the session's create_ms, ARGV[4] the first
-- index to fold, ARGV[5] the last, ARGV[6] the new summary, ARGV[7] the UTF-8 bytes the
-- folded turns held, ARGV[8] "1" to archive them, ARGV[9] the sequence number their
-- items end at (0: none), ARGV[10 ..] their request ids
-- -> {"OK", meta, state} | {"NOT_FOUND"} | {"CONFLICT"}

local m = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
local folded = number(m.folded_turns)
local first, last = tonumber(ARGV[4]), tonumber(ARGV[5])
local running = tonumber(m.run_index)
local bound = running > 0 and running or tonumber(m.total_turns) + 1
-- Planned on another session of the same id, or another fold came first.
if m.create_ms ~= ARGV[3] or folded + 1 ~= first or last < first or last >= bound then
  return {'CONFLICT'}
end
local count = last - folded
if ARGV[8] == '1' then
  local turns = redis.call('LRANGE', KEYS[3], 0, count - 1)
  for k = 1, #turns, 500 do
    local pairs = {}
    for j = k, math.min(k + 499, #turns) do
      pairs[#pairs + 1] = folded + j
      pairs[#pairs + 1] = turns[j]
    end
    redis.call('HSET', KEYS[6], unpack(pairs))
  end
else
  -- Forget the folded turns' request ids, unless a later turn took one over.
  for k = 10, #ARGV do
    local at = tonumber(redis.call('HGET', KEYS[4], ARGV[k]))
    if at and at <= last then
      redis.call('HDEL', KEYS[4], ARGV[k])
    end
  end
end
redis.call('LTRIM', KEYS[3], count, -1)
if tonumber(ARGV[9]) > 0 then
  local folded_items = redis.call('ZRANGE', KEYS[7], '-inf', ARGV[9], 'BYSCORE', 'WITHSCORES')
  local records = {}
  for k = 1, #folded_items, 2 do
    records[#records + 1] = folded_items[k]
    if ARGV[8] == '1' then
      redis.call('ZADD', KEYS[9], folded_items[k + 1], folded_items[k])
    end
  end
  forget_item_ids(KEYS, records)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', ARGV[9])
end
redis.call('HSET', KEYS[1], 'summary', ARGV[6], 'folded_turns', last,
  'history_bytes', number(m.history_bytes) - ARGV[7], 'update_ms', ARGV[1],
  'version', m.version + 1)
return commit(KEYS, ARGV[2], {{'k', COMPRESSED_EVENT, session = SUMMARY}})
