-- POP_ITEM: removes the newest item of the history and returns it.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id
-- -> {"OK", meta, state, item record or false} | {"NOT_FOUND"} | {"ENDED"}
--  | {"BUSY", running index}

local m, raw = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
if tonumber(m.status) == ENDED then
  return {'ENDED'}
end
local abandoned = abandoned_turn(KEYS, m, ARGV[1])
if abandoned == false then
  return {'BUSY', tonumber(m.run_index)}
end

if not abandoned and redis.call('ZCARD', KEYS[7]) == 0 then
  return {'OK', raw, read_state(KEYS), false}  -- nothing to pop or to change
end
if abandoned then
  redis.call('LSET', KEYS[3], -1, abandoned)
end
local popped = redis.call('ZPOPMAX', KEYS[7])
if popped[1] then
  forget_item_ids(KEYS, {popped[1]})
end
redis.call('HSET', KEYS[1], 'run_index', 0, 'run_id', '', 'lease_ms', 0,
  'update_ms', ARGV[1], 'activity_ms', ARGV[1], 'version', m.version + 1)
local reply = commit(KEYS, ARGV[2], {{'k', SESSION_UPDATED_EVENT, session = true}})
reply[4] = popped[1] or false
return reply
