-- PUBLISH: logs a running turn's deltas and items, if the run still owns the turn.
--
-- KEYS[1] meta, KEYS[2] events, KEYS[3] the key that exists while someone watches
-- ARGV[1] now_ms, ARGV[2] run_id, ARGV[3] turn index, ARGV[4 ..] kind, text or item
-- record pairs
-- -> {"OK", 1 when someone watches} | {"SUPERSEDED"}

local m = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m or tonumber(m.run_index) ~= tonumber(ARGV[3]) or m.run_id ~= ARGV[2] then
  return {'SUPERSEDED'}
end
local events = {}
for k = 4, #ARGV, 2 do
  events[#events + 1] = {'k', ARGV[k], 'r', ARGV[2], 'i', ARGV[3], 'x', ARGV[k + 1]}
end
log_events(KEYS[2], ARGV[1], m.expire_ms, events)
return {'OK', redis.call('EXISTS', KEYS[3])}
