-- LIST: a page of a user's live sessions, most recent activity first, ties by id
-- descending; drops the sessions that are gone from the index.
--
-- KEYS[1] index, KEYS[2] the user's state, KEYS[3] the app's state or the user's outbox
-- ARGV[1] now_ms, ARGV[2] the meta key of the user's sessions less their id
-- (keys.UserKeys.session_prefix), ARGV[3] what follows a meta key in its state key
-- (keys.UserKeys.state_suffix), ARGV[4] agent_id or "" for all, ARGV[5] page_size,
-- ARGV[6] "1" when a cursor follows, ARGV[7] cursor activity ms, ARGV[8] cursor session_id
-- -> {"OK", more (0/1), {{session_id, meta, state}, ...}, shared state}
--
-- Each state is the session's own keys; the shared state (see shared_state) is the
-- same for every session of the page, so it comes once.
--
-- Keys not in KEYS: the meta and state keys of the sessions read, ARGV[2] followed by
-- each id in the index (and ARGV[3] for the state). Which sessions those are is known
-- only as the index is read, in this script, which skips the expired ones and those of
-- other agents until the page is full: passing them in KEYS would take another round
-- trip per page, and the index could change in between. They start with the user's hash
-- tagged part, as KEYS[1] does, so they are in its cluster slot.

local now = tonumber(ARGV[1])
local base, state_suffix = ARGV[2], ARGV[3]
local agent, size = ARGV[4], tonumber(ARGV[5])
local has_cursor = ARGV[6] == '1'
local after_activity, after_id = tonumber(ARGV[7]), ARGV[8]

-- Byte order, as the sorted set orders ties; Lua's own < follows the server locale.
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

local page, gone, more = {}, {}, 0
if size > 0 then
  local max = has_cursor and ARGV[7] or '+inf'
  local offset = 0
  while more == 0 do
    local batch = redis.call(
      'ZRANGE', KEYS[1], max, '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, size + 1, 'WITHSCORES')
    if #batch == 0 then
      break
    end
    offset = offset + #batch / 2
    for i = 1, #batch, 2 do
      local id = batch[i]
      if not has_cursor or tonumber(batch[i + 1]) < after_activity
          or bytes_before(id, after_id) then
        local meta = base .. id
        local raw = redis.call('HMGET', meta, unpack(META))
        local expire = raw[#META]
        if not expire or tonumber(expire) <= now then
          gone[#gone + 1] = id
        elseif agent == '' or raw[AGENT_ID] == agent then
          if #page == size then
            more = 1
            break
          end
          page[#page + 1] = {id, raw, redis.call('HGETALL', meta .. state_suffix)}
        end
      end
    end
  end
end
for i = 1, #gone, 1000 do
  redis.call('ZREM', KEYS[1], unpack(gone, i, math.min(i + 999, #gone)))
end
return {'OK', more, page, shared_state(KEYS[2], KEYS[3])}
