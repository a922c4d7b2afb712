-- UPDATE: applies a patch of meta fields and, maybe, a new state.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] "1" to check the etag, ARGV[4] expected etag,
-- ARGV[5] "1" to replace the state, ARGV[6] n: count of meta field/value pairs,
-- ARGV[7 .. 6 + 2n] meta field/value pairs, ARGV[7 + 2n] r: count of state keys to remove,
-- ARGV[8 + 2n .. 7 + 2n + r] those keys, ARGV[8 + 2n + r ..] new state key, JSON value pairs
-- -> {"OK", meta, state} | {"NOT_FOUND"} | {"ETAG", version}

local m = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
if ARGV[3] == '1' and ARGV[4] ~= 'W/"' .. m.version .. '"' then
  return {'ETAG', m.version}
end
local n = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], 'update_ms', ARGV[1], 'activity_ms', ARGV[1],
  'version', m.version + 1, unpack(ARGV, 7, 6 + 2 * n))
local r = tonumber(ARGV[7 + 2 * n])
if ARGV[5] == '1' then
  -- The session's keys are replaced; the user's and the app's named are set.
  redis.call('DEL', KEYS[2])
end
write_state(KEYS, 8 + 2 * n, 7 + 2 * n + r, 8 + 2 * n + r)
return commit(KEYS, ARGV[2], {{'k', SESSION_UPDATED_EVENT, session = true}})
