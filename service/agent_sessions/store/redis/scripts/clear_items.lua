-- CLEAR_ITEMS: removes every item and turn of the history (the archive stays); the
-- counters go on, so that no sequence number or turn index is reused.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id
-- -> {"OK", meta, state} | {"NOT_FOUND"} | {"ENDED"} | {"BUSY", running index}

local m = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
if tonumber(m.status) == ENDED then
  return {'ENDED'}
end
if abandoned_turn(KEYS, m, ARGV[1]) == false then
  return {'BUSY', tonumber(m.run_index)}
end

-- The request ids of archived turns stay: those turns still replay.
local total = tonumber(m.total_turns)
local folded = number(m.folded_turns)
local requests = redis.call('HGETALL', KEYS[4])
for k = 1, #requests, 2 do
  if tonumber(requests[k + 1]) > folded then
    redis.call('HDEL', KEYS[4], requests[k])
  end
end
redis.call('DEL', KEYS[3], KEYS[7], KEYS[8])
redis.call('HSET', KEYS[1], 'summary', '', 'folded_turns', total, 'history_bytes', 0,
  'run_index', 0, 'run_id', '', 'lease_ms', 0, 'update_ms', ARGV[1],
  'activity_ms', ARGV[1], 'version', m.version + 1)
return commit(KEYS, ARGV[2], {{'k', SESSION_UPDATED_EVENT, session = true}})
