-- CREATE: a new session, or an imported one with its finished history.
--
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
-- KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] user state, KEYS[11] app state or outbox, KEYS[12] events, KEYS[13] watched
-- (see prelude.lua)
-- ARGV[1] now_ms (the session's create time), ARGV[2] session_id,
-- ARGV[3] the most live sessions the user may have (0: no limit),
-- ARGV[4] the meta key of the user's sessions less their id (keys.UserKeys.session_prefix),
-- ARGV[5 .. 4 + M] the values of META_FIELDS in order (M = #META_FIELDS),
-- ARGV[5 + M] n: count of turns, ARGV[6 + M] r: count of request ids, ARGV[7 + M] i:
-- count of items (all 0 for a new session; an imported one brings its finished history),
-- ARGV[8 + M .. 7 + M + n] each turn's final JSON, oldest first,
-- ARGV[8 + M + n .. 7 + M + n + 2r] request id, turn index pairs,
-- ARGV[8 + M + n + 2r .. 7 + M + n + 2r + 3i] each item's sequence, record, client id,
-- ARGV[8 + M + n + 2r + 3i ..] state key, JSON value pairs
-- -> {"OK", meta, state} (also for a retry: the session exists, made with the same
--    non-empty create_request_id) | {"EXISTS"} | {"LIMIT", live sessions}
--
-- Keys not in KEYS: at the limit, the meta keys of the user's other sessions, ARGV[4]
-- followed by each id in the index. Which sessions those are is known only once the
-- index is read, in this script: passing them in KEYS would take another round trip,
-- and the index could change in between. They start with the user's hash tagged part,
-- as KEYS[5] does, so they are in its cluster slot.

local now = tonumber(ARGV[1])
local existing, raw = load_meta(KEYS[1], now)
if existing then
  -- A retry of the create that made it (same request id) gets the session back.
  local request_id = ARGV[4 + CREATE_REQUEST_ID]
  if request_id ~= '' and raw[CREATE_REQUEST_ID] == request_id then
    return {'OK', raw, read_state(KEYS)}
  end
  return {'EXISTS'}
end
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('ZCARD', KEYS[5]) >= limit then
  -- The index may still list sessions that are gone: count the live ones, and drop
  -- the others (this costs a pass over the index only when the user is at the limit).
  local live = 0
  for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
    local expire = redis.call('HGET', ARGV[4] .. id, 'expire_ms')
    if expire and tonumber(expire) > now then
      live = live + 1
    else
      redis.call('ZREM', KEYS[5], id)
    end
  end
  if live >= limit then
    return {'LIMIT', live}
  end
end
-- Whatever is left of an expired session of the same id goes first.
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
local fields = {}
for i, field in ipairs(META) do
  fields[#fields + 1] = field
  fields[#fields + 1] = ARGV[4 + i]
end
redis.call('HSET', KEYS[1], unpack(fields))
local n, r = tonumber(ARGV[5 + #META]), tonumber(ARGV[6 + #META])
local i = tonumber(ARGV[7 + #META])
local first_turn = 8 + #META
local first_request = first_turn + n
local first_item = first_request + 2 * r
local first_state = first_item + 3 * i
call_with_argv('RPUSH', KEYS[3], first_turn, first_request - 1)
call_with_argv('HSET', KEYS[4], first_request, first_item - 1)
for k = first_item, first_state - 1, 3 do
  redis.call('ZADD', KEYS[7], ARGV[k], ARGV[k + 1])
  if ARGV[k + 2] ~= '' then
    redis.call('HSET', KEYS[8], ARGV[k + 2], ARGV[k])
  end
end
write_state(KEYS, 1, 0, first_state)
return commit(KEYS, ARGV[2])
