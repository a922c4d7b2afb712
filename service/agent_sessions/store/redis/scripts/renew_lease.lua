-- RENEW_LEASE: extends the lease of the running turn, if the run still owns it (the
-- heartbeat of the run).
--
-- KEYS[1] meta
-- ARGV[1] now_ms, ARGV[2] turn index, ARGV[3] run_id, ARGV[4] lease end ms
-- -> {"OK"} | {"SUPERSEDED"}
--
-- Neither activity nor the version changes: a heartbeat is not a change of the session.

local m = load_meta(KEYS[1], tonumber(ARGV[1]))
local index = tonumber(ARGV[2])
if not m or index < 1 or tonumber(m.run_index) ~= index or m.run_id ~= ARGV[3] then
  return {'SUPERSEDED'}
end
redis.call('HSET', KEYS[1], 'lease_ms', ARGV[4])
return {'OK'}
