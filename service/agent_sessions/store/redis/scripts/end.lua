-- END: marks a session ENDED (idempotent).
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id
-- -> {"OK", meta, state} | {"NOT_FOUND"}

local m, raw = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
if tonumber(m.status) == ENDED then
  return {'OK', raw, read_state(KEYS)}
end
redis.call('HSET', KEYS[1], 'status', ENDED, 'update_ms', ARGV[1], 'version', m.version + 1)
return commit(KEYS, ARGV[2], {{'k', ENDED_EVENT, session = true}})
