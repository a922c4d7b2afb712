-- WRITE_ITEMS: stores items as one new completed turn, with a state delta, and, for a
-- replace, removes the items after a sequence number first; or replays the write of a
-- request id.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] request_id or "", ARGV[4] the expected
-- sequence of the newest item (0: none) or "", ARGV[5] the expected etag or "", ARGV[6] the sequence after
-- which to remove the items (a replace) or "", ARGV[7] the new turn's JSON less its item
-- range and closing brace, ARGV[8] the UTF-8 bytes of its text, ARGV[9] n: count of
-- items, ARGV[10] d: count of state keys to delete, ARGV[11 .. 10 + 2n] each item's
-- client id (or "") and record less its sequence, turn and time, ARGV[11 + 2n .. 10 + 2n
-- + d] the state keys to delete, ARGV[11 + 2n + d ..] state key, JSON value pairs to set
-- -> {"OK", meta, state, {item record, ...}} | {"REPLAY", meta, state, {item record, ...}}
--  | {"NOT_FOUND"} | {"ENDED"} | {"MAX_TURNS", max_turns} | {"SEQUENCE", last}
--  | {"ETAG", version} | {"BUSY", running index}
--
-- An item record is {"q":sequence,"t":turn,"ct":time,...}: the script puts the first
-- three, which only it knows, before what the store wrote. A turn written here keeps its
-- item range ("is", "ie"; ie < is when it stored none) and, when it answered with items
-- held already, every sequence it answered with ("aq"); it is never compressed, so a
-- replay reads it.

local now = tonumber(ARGV[1])
local m, raw = load_meta(KEYS[1], now)
if not m then
  return {'NOT_FOUND'}
end
local request_id = ARGV[3]
if request_id ~= '' then
  local earlier = tonumber(redis.call('HGET', KEYS[4], request_id))
  local turn = earlier and stored_turn(KEYS, m, earlier)
  if turn and string.sub(turn, 1, 1) ~= 'Z' then
    local fields = cjson.decode(turn)
    if fields['is'] then
      local records
      if fields['aq'] then
        -- It answered with items held already too: those, in their places.
        records = {}
        for _, sequence in ipairs(fields['aq']) do
          local record = redis.call('ZRANGE', KEYS[7], sequence, sequence, 'BYSCORE')[1]
          if record then
            records[#records + 1] = record
          end
        end
      else
        records = redis.call('ZRANGE', KEYS[7], fields['is'], fields['ie'], 'BYSCORE')
      end
      return {'REPLAY', raw, read_state(KEYS), records}
    end
  end
end
if tonumber(m.status) == ENDED then
  return {'ENDED'}
end
local abandoned = abandoned_turn(KEYS, m, ARGV[1])
if abandoned == false then
  return {'BUSY', tonumber(m.run_index)}
end
local max_turns = tonumber(m.max_turns)
if max_turns > 0 and tonumber(m.turn_count) >= max_turns then
  return {'MAX_TURNS', max_turns}
end
if ARGV[4] ~= '' then
  local newest = redis.call('ZRANGE', KEYS[7], -1, -1, 'WITHSCORES')[2] or 0
  if tonumber(ARGV[4]) ~= tonumber(newest) then
    return {'SEQUENCE', tonumber(newest)}
  end
end
if ARGV[5] ~= '' and ARGV[5] ~= 'W/"' .. m.version .. '"' then
  return {'ETAG', m.version}
end

if abandoned then
  redis.call('LSET', KEYS[3], -1, abandoned)
end
if ARGV[6] ~= '' then
  local after = '(' .. ARGV[6]
  forget_item_ids(KEYS, redis.call('ZRANGE', KEYS[7], after, '+inf', 'BYSCORE'))
  redis.call('ZREMRANGEBYSCORE', KEYS[7], after, '+inf')
end
local last = number(m.item_seq)
local index = tonumber(m.total_turns) + 1
local first = last + 1
local n = tonumber(ARGV[9])
local stored = {}
local answered = {}
local any_held = false
for k = 11, 10 + 2 * n, 2 do
  local id = ARGV[k]
  local record
  if id ~= '' then
    local held = redis.call('HGET', KEYS[8], id)
    if held then
      record = redis.call('ZRANGE', KEYS[7], held, held, 'BYSCORE')[1]
      if record then
        any_held = true
        answered[#answered + 1] = held
      end
    end
  end
  if not record then
    last = last + 1
    record = '{"q":' .. last .. ',"t":' .. index .. ',"ct":' .. ARGV[1] .. ',' .. ARGV[k + 1]
    redis.call('ZADD', KEYS[7], last, record)
    if id ~= '' then
      redis.call('HSET', KEYS[8], id, last)
    end
    answered[#answered + 1] = last
  end
  stored[#stored + 1] = record
end
local range = ',"is":' .. first .. ',"ie":' .. last
if any_held then
  range = range .. ',"aq":[' .. table.concat(answered, ',') .. ']'
end
local turn = ARGV[7] .. range .. '}'
redis.call('RPUSH', KEYS[3], turn)
if request_id ~= '' then
  redis.call('HSET', KEYS[4], request_id, index)
end
local d = tonumber(ARGV[10])
write_state(KEYS, 11 + 2 * n, 10 + 2 * n + d, 11 + 2 * n + d)
redis.call('HSET', KEYS[1], 'total_turns', index, 'turn_count', tonumber(m.turn_count) + 1,
  'item_seq', last, 'run_index', 0, 'run_id', '', 'lease_ms', 0, 'update_ms', ARGV[1],
  'activity_ms', ARGV[1], 'version', m.version + 1,
  'history_bytes', number(m.history_bytes) + ARGV[8])
local reply = commit(KEYS, ARGV[2], {{'k', TURN_COMMITTED_EVENT, 'r', '', 'i', index,
  'x', turn, 'y', '[' .. table.concat(stored, ',') .. ']', session = true}})
reply[4] = stored
return reply
