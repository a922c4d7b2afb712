-- BEGIN_TURN: records a new turn in progress with the user's input (failing the last
-- turn if its run's lease ran out), or replays the completed turn of a request id.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] request_id or "", ARGV[4] run_id,
-- ARGV[5] lease end ms, ARGV[6] history_turns, ARGV[7] the new turn's JSON (open tail),
-- ARGV[8] the UTF-8 bytes of its input, ARGV[9] how many of the newest items to return
-- -> {"OK", meta, state, turns before the window, {window turn JSON, ...},
--     {item record, ...}, id of its RUN_STARTED event, 1 when someone watches}
--  | {"REPLAY", meta, state, index, turn JSON}
--  | {"NOT_FOUND"} | {"EXTERNAL"} | {"ENDED"} | {"MAX_TURNS", max_turns}
--  | {"BUSY", running index} | {"ATTACH", running index, its run id} (the running turn
--    was begun with this request id)

local now = tonumber(ARGV[1])
local m, raw = load_meta(KEYS[1], now)
if not m then
  return {'NOT_FOUND'}
end
local request_id = ARGV[3]
if request_id ~= '' then
  local earlier = tonumber(redis.call('HGET', KEYS[4], request_id))
  if earlier then
    local turn = stored_turn(KEYS, m, earlier)
    if turn and turn_status(turn) == COMPLETED then
      return {'REPLAY', raw, read_state(KEYS), earlier, turn}
    end
  end
end
if m.external == '1' then
  return {'EXTERNAL'}
end
if tonumber(m.status) == ENDED then
  return {'ENDED'}
end
local max_turns = tonumber(m.max_turns)
if max_turns > 0 and tonumber(m.turn_count) >= max_turns then
  return {'MAX_TURNS', max_turns}
end
local abandoned
local running = tonumber(m.run_index)
if running > 0 then
  if tonumber(m.lease_ms) > now then
    if request_id ~= '' and tonumber(redis.call('HGET', KEYS[4], request_id)) == running then
      return {'ATTACH', running, m.run_id}
    end
    return {'BUSY', running}
  end
  -- At most one turn runs, so the running turn is the last one.
  abandoned = close_turn(redis.call('LINDEX', KEYS[3], -1),
    ABANDONED_TAIL_BEFORE_TIME .. ARGV[1] .. ABANDONED_TAIL_AFTER_TIME)
end

if abandoned then
  redis.call('LSET', KEYS[3], -1, abandoned)
end
local total = tonumber(m.total_turns)
local history = tonumber(ARGV[6])
local window = {}
if history > 0 then
  window = redis.call('LRANGE', KEYS[3], -history, -1)
end
local index = total + 1
redis.call('RPUSH', KEYS[3], ARGV[7])
if request_id ~= '' then
  redis.call('HSET', KEYS[4], request_id, index)
end
redis.call('HSET', KEYS[1], 'total_turns', index, 'run_index', index, 'run_id', ARGV[4],
  'lease_ms', ARGV[5], 'update_ms', ARGV[1], 'activity_ms', ARGV[1], 'version', m.version + 1,
  'history_bytes', number(m.history_bytes) + ARGV[8])
local items = {}
local wanted = tonumber(ARGV[9])
if wanted > 0 then
  items = redis.call('ZRANGE', KEYS[7], -wanted, -1)
end
local reply, event_id = commit(KEYS, ARGV[2],
  {{'k', RUN_STARTED_EVENT, 'r', ARGV[4], 'i', index, 'q', request_id}})
reply[4] = total - #window
reply[5] = window
reply[6] = items
reply[7] = event_id
reply[8] = redis.call('EXISTS', KEYS[13])
return reply
