-- DELETE: removes a session, its turns and its listing.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id
-- -> {"OK"} | {"NOT_FOUND"}

if not load_meta(KEYS[1], tonumber(ARGV[1])) then
  return {'NOT_FOUND'}
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
redis.call('ZREM', KEYS[5], ARGV[2])
-- The log stays a while, so that watchers see the session go.
redis.call('XADD', KEYS[12], 'MAXLEN', EVENTS_MAX, '0-*', 't', ARGV[1], 'k', DELETED_EVENT)
redis.call('PEXPIRE', KEYS[12], DELETED_GRACE_MS)
return {'OK'}
