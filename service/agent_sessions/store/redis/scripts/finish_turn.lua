-- FINISH_TURN: stores the running turn's outcome and, for a completed turn, its state
-- delta, if the run still owns the turn.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids
-- ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] turn index, ARGV[4] run_id,
-- ARGV[5] "1" when the turn completed, ARGV[6] the finished turn, ARGV[7] the UTF-8 bytes
-- of its output, ARGV[8] n: count of state keys to delete, ARGV[9 .. 8 + n] those keys,
-- ARGV[9 + n ..] state key, JSON value pairs to set
-- -> {"OK", meta, state} | {"SUPERSEDED"}

local m = load_meta(KEYS[1], tonumber(ARGV[1]))
local index = tonumber(ARGV[3])
if not m or index < 1 or tonumber(m.run_index) ~= index or m.run_id ~= ARGV[4] then
  return {'SUPERSEDED'}
end
-- The running turn is the last one, still open.
check_open(redis.call('LINDEX', KEYS[3], -1))

redis.call('LSET', KEYS[3], -1, ARGV[6])
local turn_count = tonumber(m.turn_count)
if ARGV[5] == '1' then
  turn_count = turn_count + 1
  local n = tonumber(ARGV[8])
  call_with_argv('HDEL', KEYS[2], 9, 8 + n)
  call_with_argv('HSET', KEYS[2], 9 + n, #ARGV)
end
redis.call('HSET', KEYS[1], 'turn_count', turn_count, 'run_index', 0, 'run_id', '',
  'lease_ms', 0, 'update_ms', ARGV[1], 'activity_ms', ARGV[1], 'version', m.version + 1,
  'history_bytes', number(m.history_bytes) + ARGV[7])
return commit(KEYS, ARGV[2])
