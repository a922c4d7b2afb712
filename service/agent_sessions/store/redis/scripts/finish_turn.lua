-- FINISH_TURN: stores the running turn's outcome and, for a completed turn, its state
-- delta and its items, if the run still owns the turn.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] turn index, ARGV[4] run_id,
-- ARGV[5] "1" when the turn completed, ARGV[6] the finished turn, ARGV[7] the UTF-8 bytes
-- of its output, ARGV[8] the session's last item sequence the items follow ("" when
-- there are none), ARGV[9] the run's events not yet logged, a JSON array of [kind,
-- text or item record] ("" for none), ARGV[10] i: count of items, ARGV[11 .. 10 + i]
-- their records (sequence numbers ARGV[8] + 1 on), ARGV[11 + i] n: count of state keys
-- to delete, ARGV[12 + i .. 11 + i + n] those keys, ARGV[12 + i + n ..] state key, JSON
-- value pairs to set
-- -> {"OK", meta, state} | {"SUPERSEDED"}
--
-- No item is written while a turn runs (writes of items are refused then), so the items
-- follow the sequence the run saw when it began; if not, the run lost its turn.

local m = load_meta(KEYS[1], tonumber(ARGV[1]))
local index = tonumber(ARGV[3])
if not m or index < 1 or tonumber(m.run_index) ~= index or m.run_id ~= ARGV[4]
    or (ARGV[8] ~= '' and number(m.item_seq) ~= tonumber(ARGV[8])) then
  return {'SUPERSEDED'}
end
-- The running turn is the last one, still open.
check_open(redis.call('LINDEX', KEYS[3], -1))

redis.call('LSET', KEYS[3], -1, ARGV[6])
local turn_count = tonumber(m.turn_count)
local last = number(m.item_seq)
local i = tonumber(ARGV[10])
local records = {}
if ARGV[5] == '1' then
  turn_count = turn_count + 1
  for k = 11, 10 + i do
    last = last + 1
    redis.call('ZADD', KEYS[7], last, ARGV[k])
    records[#records + 1] = ARGV[k]
  end
  local n = tonumber(ARGV[11 + i])
  write_state(KEYS, 12 + i, 11 + i + n, 12 + i + n)
end
redis.call('HSET', KEYS[1], 'turn_count', turn_count, 'item_seq', last, 'run_index', 0,
  'run_id', '',
  'lease_ms', 0, 'update_ms', ARGV[1], 'activity_ms', ARGV[1], 'version', m.version + 1,
  'history_bytes', number(m.history_bytes) + ARGV[7])
local events = {}
if ARGV[9] ~= '' then
  for _, event in ipairs(cjson.decode(ARGV[9])) do
    events[#events + 1] = {'k', event[1], 'r', ARGV[4], 'i', index, 'x', event[2]}
  end
end
events[#events + 1] = {'k', TURN_COMMITTED_EVENT, 'r', ARGV[4], 'i', index, 'x', ARGV[6],
  'y', '[' .. table.concat(records, ',') .. ']', session = true}
return commit(KEYS, ARGV[2], events)
