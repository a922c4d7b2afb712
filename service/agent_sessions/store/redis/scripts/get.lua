-- GET: a live session.
--
-- KEYS[1] meta, KEYS[2] state
-- ARGV[1] now_ms
-- -> {"OK", meta, state} | {"NOT_FOUND"}

local m, raw = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
return {'OK', raw, redis.call('HGETALL', KEYS[2])}
