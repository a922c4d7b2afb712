"""The Lua scripts of the Redis store: one script, so one round trip, per store call.

Every script runs all of its checks before its first write, so a refused call leaves
nothing half-written. Each reply is an array whose first element is a status tag
(``OK`` or the reason for refusing) that :mod:`agent_sessions.store.redis` maps to a
domain error.

Keys of one session (all carry the user's ``{user_id}`` hash tag, so one cluster slot):

- ``meta``: hash of the fields in :data:`META_FIELDS`;
- ``state``: hash of top-level state key -> JSON value;
- ``turns``: the history, a list whose element ``i - folded_turns - 1`` is turn ``i``
  (turns folded into the summary leave it from the head);
- ``requests``: hash of request id -> turn index, for the turns in the history or archive;
- ``archive``: hash of turn index -> turn, the folded turns kept for audit, if any;
- ``index``: the user's sorted set of session ids scored by last activity.

A turn is JSON (see :data:`OPEN_TURN_TAIL`), or, once finished and large, ``Z``, its
status digit and the zstd frame of that JSON, so that scripts still read its status.

A session reply is ``{tag, meta, state}``: ``meta`` the values of :data:`META_FIELDS`
in that order (HMGET) and ``state`` a flat HGETALL array.
"""

from __future__ import annotations

import json

from agent_sessions.model import SessionStatus, TurnStatus
from agent_sessions.store.protocol import ABANDONED_TURN_ERROR

META_FIELDS = (
    "user_id",
    "agent_id",
    "status",
    "create_ms",
    "update_ms",
    "activity_ms",
    "ttl_ms",
    "idle_ms",
    "max_turns",
    "turn_count",
    "total_turns",
    "version",
    "labels",
    "summary",
    "run_index",
    "run_id",
    "lease_ms",
    "create_request_id",
    "folded_turns",
    "history_bytes",
    "expire_ms",
)
"""Fields of the meta hash, in the order replies carry them; ``expire_ms`` stays last."""

OPEN_TURN_TAIL = ',"s":1,"dt":0,"out":"","err":""}'
"""How the JSON of a turn in progress ends.

A turn is ``{"ct":…,"rq":…,"in":…,"s":…,"dt":…,"out":…,"err":…}``: the fields that
never change come first, so a script can fail an abandoned turn by swapping this fixed
tail, without decoding or re-encoding the user's text in Lua.
"""

_ABANDONED_TAIL_AFTER_TIME = ',"out":"","err":' + json.dumps(ABANDONED_TURN_ERROR) + "}"


def _lua_string(text: str) -> str:
    if "]]" in text or "\n" in text:
        raise ValueError(f"cannot embed {text!r} in a Lua long string")
    return f"[[{text}]]"


_PRELUDE = f"""
local META = {{{", ".join(_lua_string(f) for f in META_FIELDS)}}}
local AGENT_ID = {META_FIELDS.index("agent_id") + 1}
local CREATE_REQUEST_ID = {META_FIELDS.index("create_request_id") + 1}
local ENDED = {int(SessionStatus.ENDED)}
local COMPLETED = {int(TurnStatus.COMPLETED)}
local OPEN_TURN_TAIL = {_lua_string(OPEN_TURN_TAIL)}
local ABANDONED_TAIL_BEFORE_TIME = {_lua_string(',"s":' + str(int(TurnStatus.FAILED)) + ',"dt":')}
local ABANDONED_TAIL_AFTER_TIME = {_lua_string(_ABANDONED_TAIL_AFTER_TIME)}

-- The meta values and the same values by field name, or nil when the session is
-- missing or expired at the caller's clock (tests move that clock past Redis's).
local function load_meta(key, now)
  local raw = redis.call('HMGET', key, unpack(META))
  local expire = raw[#META]
  if not expire or tonumber(expire) <= now then
    return nil
  end
  local m = {{}}
  for i, field in ipairs(META) do
    m[field] = raw[i]
  end
  return m, raw
end

-- unpack() of thousands of values would overflow Lua's C stack, so long argument
-- runs go out in slices (of even length, keeping field/value pairs together).
local function call_with_argv(command, key, first, last)
  for i = first, last, 1000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 999, last)))
  end
end

-- Fields written by older versions may be missing (false): they count as 0.
local function number(value)
  return tonumber(value) or 0
end

-- A turn's status, from its JSON or the digit after a compressed turn's 'Z'.
local function turn_status(turn)
  if string.sub(turn, 1, 1) == 'Z' then
    return tonumber(string.sub(turn, 2, 2))
  end
  return cjson.decode(turn)['s']
end

-- The stored turn of an index, from the history or the archive (nil if neither has it).
-- keys: meta, state, turns, requests, index, archive.
local function stored_turn(keys, m, index)
  local folded = number(m.folded_turns)
  if index > folded then
    return redis.call('LINDEX', keys[3], index - folded - 1)
  end
  return redis.call('HGET', keys[6], index)
end

local function check_open(turn)
  if not turn or string.sub(turn, -#OPEN_TURN_TAIL) ~= OPEN_TURN_TAIL then
    error('the last turn is not in progress')
  end
end

-- A turn in progress with its fixed tail swapped for the final one.
local function close_turn(open, tail)
  check_open(open)
  return string.sub(open, 1, -#OPEN_TURN_TAIL - 1) .. tail
end

-- Ends every write: recomputes the expiry from the stored fields, reads the reply,
-- then expires the session's keys and indexes it by activity. The reply is read
-- before PEXPIREAT because an expiry already past deletes the keys at once.
-- keys: meta, state, turns, requests, index, archive.
local function commit(keys, session_id)
  local t = redis.call('HMGET', keys[1], 'create_ms', 'ttl_ms', 'activity_ms', 'idle_ms')
  local expire = math.min(t[1] + t[2], t[3] + t[4])
  redis.call('HSET', keys[1], 'expire_ms', expire)
  local reply = {{
    'OK', redis.call('HMGET', keys[1], unpack(META)), redis.call('HGETALL', keys[2])
  }}
  for _, i in ipairs({{1, 2, 3, 4, 6}}) do
    redis.call('PEXPIREAT', keys[i], expire)
  end
  redis.call('ZADD', keys[5], t[3], session_id)
  -- The index lives as long as its longest-lived session (-1: no expiry yet).
  if redis.call('PEXPIRETIME', keys[5]) < expire then
    redis.call('PEXPIREAT', keys[5], expire)
  end
  return reply
end
"""

# KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
# KEYS[6] archive
# ARGV[1] now_ms (the session's create time), ARGV[2] session_id,
# ARGV[3] the most live sessions the user may have (0: no limit),
# ARGV[4] the user's session key prefix ("<prefix>{<user_id>}:s:"),
# ARGV[5 .. 4 + M] the values of META_FIELDS in order (M = #META_FIELDS),
# ARGV[5 + M] n: count of turns, ARGV[6 + M] r: count of request ids (both 0 for a new
# session; an imported one brings its finished history),
# ARGV[7 + M .. 6 + M + n] each turn's final JSON, oldest first,
# ARGV[7 + M + n .. 6 + M + n + 2r] request id, turn index pairs,
# ARGV[7 + M + n + 2r ..] state key, JSON value pairs
# -> {"OK", meta, state} (also for a retry: the session exists, made with the same
#    non-empty create_request_id) | {"EXISTS"} | {"LIMIT", live sessions}
CREATE = (
    _PRELUDE
    + """
local now = tonumber(ARGV[1])
local existing, raw = load_meta(KEYS[1], now)
if existing then
  -- A retry of the create that made it (same request id) gets the session back.
  local request_id = ARGV[4 + CREATE_REQUEST_ID]
  if request_id ~= '' and raw[CREATE_REQUEST_ID] == request_id then
    return {'OK', raw, redis.call('HGETALL', KEYS[2])}
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
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6])
local fields = {}
for i, field in ipairs(META) do
  fields[#fields + 1] = field
  fields[#fields + 1] = ARGV[4 + i]
end
redis.call('HSET', KEYS[1], unpack(fields))
local n, r = tonumber(ARGV[5 + #META]), tonumber(ARGV[6 + #META])
local first_turn = 7 + #META
local first_request = first_turn + n
local first_state = first_request + 2 * r
call_with_argv('RPUSH', KEYS[3], first_turn, first_request - 1)
call_with_argv('HSET', KEYS[4], first_request, first_state - 1)
call_with_argv('HSET', KEYS[2], first_state, #ARGV)
return commit(KEYS, ARGV[2])
"""
)

# KEYS[1] meta, KEYS[2] state
# ARGV[1] now_ms
# -> {"OK", meta, state} | {"NOT_FOUND"}
GET = (
    _PRELUDE
    + """
local m, raw = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
return {'OK', raw, redis.call('HGETALL', KEYS[2])}
"""
)

# KEYS[1] index
# ARGV[1] now_ms, ARGV[2] the user's session key prefix ("<prefix>{<user_id>}:s:"),
# ARGV[3] agent_id or "" for all, ARGV[4] page_size,
# ARGV[5] "1" when a cursor follows, ARGV[6] cursor activity ms, ARGV[7] cursor session_id
# -> {"OK", more (0/1), {{session_id, meta, state}, ...}}
# The sessions' keys are derived from ARGV[2] rather than passed as KEYS because the
# index names them; they share the index's hash tag, so they live in its slot.
LIST = (
    _PRELUDE
    + """
local now = tonumber(ARGV[1])
local base, agent, size = ARGV[2], ARGV[3], tonumber(ARGV[4])
local has_cursor = ARGV[5] == '1'
local after_activity, after_id = tonumber(ARGV[6]), ARGV[7]

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
  local max = has_cursor and ARGV[6] or '+inf'
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
        local raw = redis.call('HMGET', base .. id, unpack(META))
        local expire = raw[#META]
        if not expire or tonumber(expire) <= now then
          gone[#gone + 1] = id
        elseif agent == '' or raw[AGENT_ID] == agent then
          if #page == size then
            more = 1
            break
          end
          page[#page + 1] = {id, raw, redis.call('HGETALL', base .. id .. ':state')}
        end
      end
    end
  end
end
for i = 1, #gone, 1000 do
  redis.call('ZREM', KEYS[1], unpack(gone, i, math.min(i + 999, #gone)))
end
return {'OK', more, page}
"""
)

# KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
# KEYS[6] archive
# ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] "1" to check the etag, ARGV[4] expected etag,
# ARGV[5] "1" to replace the state, ARGV[6] n: count of meta field/value pairs,
# ARGV[7 .. 6 + 2n] meta field/value pairs, ARGV[7 + 2n ..] new state key, JSON value pairs
# -> {"OK", meta, state} | {"NOT_FOUND"} | {"ETAG", version}
UPDATE = (
    _PRELUDE
    + """
local m = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
if ARGV[3] == '1' and ARGV[4] ~= 'W/"' .. m.version .. '"' then
  return {'ETAG', m.version}
end
local n = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], 'update_ms', ARGV[1], 'activity_ms', ARGV[1],
  'version', m.version + 1, unpack(ARGV, 7, 6 + 2 * n))
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[2])
  call_with_argv('HSET', KEYS[2], 7 + 2 * n, #ARGV)
end
return commit(KEYS, ARGV[2])
"""
)

# KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
# KEYS[6] archive
# ARGV[1] now_ms, ARGV[2] session_id
# -> {"OK", meta, state} | {"NOT_FOUND"}
END = (
    _PRELUDE
    + """
local m, raw = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
if tonumber(m.status) == ENDED then
  return {'OK', raw, redis.call('HGETALL', KEYS[2])}
end
redis.call('HSET', KEYS[1], 'status', ENDED, 'update_ms', ARGV[1], 'version', m.version + 1)
return commit(KEYS, ARGV[2])
"""
)

# KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
# KEYS[6] archive
# ARGV[1] now_ms, ARGV[2] session_id
# -> {"OK"} | {"NOT_FOUND"}
DELETE = (
    _PRELUDE
    + """
if not load_meta(KEYS[1], tonumber(ARGV[1])) then
  return {'NOT_FOUND'}
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6])
redis.call('ZREM', KEYS[5], ARGV[2])
return {'OK'}
"""
)

# KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
# KEYS[6] archive
# ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] request_id or "", ARGV[4] run_id,
# ARGV[5] lease end ms, ARGV[6] history_turns, ARGV[7] the new turn's JSON (open tail),
# ARGV[8] the UTF-8 bytes of its input
# -> {"OK", meta, state, turns before the window, {window turn JSON, ...}}
#  | {"REPLAY", meta, state, index, turn JSON}
#  | {"NOT_FOUND"} | {"ENDED"} | {"MAX_TURNS", max_turns} | {"BUSY", running index}
BEGIN_TURN = (
    _PRELUDE
    + """
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
      return {'REPLAY', raw, redis.call('HGETALL', KEYS[2]), earlier, turn}
    end
  end
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
local reply = commit(KEYS, ARGV[2])
reply[4] = total - #window
reply[5] = window
return reply
"""
)

# KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
# KEYS[6] archive
# ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] turn index, ARGV[4] run_id,
# ARGV[5] "1" when the turn completed, ARGV[6] the finished turn, ARGV[7] the UTF-8 bytes
# of its output, ARGV[8] n: count of state keys to delete, ARGV[9 .. 8 + n] those keys,
# ARGV[9 + n ..] state key, JSON value pairs to set
# -> {"OK", meta, state} | {"SUPERSEDED"}
FINISH_TURN = (
    _PRELUDE
    + """
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
"""
)

# KEYS[1] meta, KEYS[2] turns, KEYS[3] archive
# ARGV[1] now_ms, ARGV[2] the first index or "" (the oldest, or the newest),
# ARGV[3] limit, ARGV[4] "1" for newest first, ARGV[5] "1" to include archived turns
# -> {"OK", the index where the next page starts (0: none), {index, turn, index, turn, ...}}
#  | {"NOT_FOUND"}
LIST_TURNS = (
    _PRELUDE
    + """
local m = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
local folded, total = number(m.folded_turns), tonumber(m.total_turns)
local lowest = folded + 1
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  lowest = 1
end
local limit = tonumber(ARGV[3])
local step = ARGV[4] == '1' and -1 or 1
local i = tonumber(ARGV[2])
if step == 1 then
  i = math.max(i or lowest, lowest)
else
  i = math.min(i or total, total)
end
local out, found = {}, 0
while found < limit and i >= lowest and i <= total do
  local last = i + step * (limit - found - 1)
  if i > folded then
    last = math.max(math.min(last, total), folded + 1)
    local low, high = math.min(i, last), math.max(i, last)
    -- Offsets from the tail, where recent turns are: Redis walks from the nearer end.
    local hot = total - folded
    local turns = redis.call('LRANGE', KEYS[2], low - folded - 1 - hot, high - folded - 1 - hot)
    local first, final = 1, #turns
    if step == -1 then
      first, final = #turns, 1
    end
    for k = first, final, step do
      out[#out + 1] = low + k - 1
      out[#out + 1] = turns[k]
    end
    found = found + #turns
  else
    -- The archive may lack indexes (folded while archiving was off).
    last = math.max(math.min(last, folded), lowest)
    local indexes = {}
    for j = i, last, step do
      indexes[#indexes + 1] = j
    end
    local turns = redis.call('HMGET', KEYS[3], unpack(indexes))
    for k = 1, #indexes do
      if turns[k] then
        out[#out + 1] = indexes[k]
        out[#out + 1] = turns[k]
        found = found + 1
      end
    end
  end
  i = last + step
end
if i < lowest or i > total then
  i = 0
end
return {'OK', i, out}
"""
)

# KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] index,
# KEYS[6] archive
# ARGV[1] now_ms, ARGV[2] session_id, ARGV[3] the session's create_ms, ARGV[4] the first
# index to fold, ARGV[5] the last, ARGV[6] the new summary, ARGV[7] the UTF-8 bytes the
# folded turns held, ARGV[8] "1" to archive them, ARGV[9 ..] their request ids
# -> {"OK", meta, state} | {"NOT_FOUND"} | {"CONFLICT"}
FOLD = (
    _PRELUDE
    + """
local m = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
local folded = number(m.folded_turns)
local first, last = tonumber(ARGV[4]), tonumber(ARGV[5])
local running = tonumber(m.run_index)
local bound = running > 0 and running or tonumber(m.total_turns) + 1
-- Planned on another session of the same id, or another fold came first.
if m.create_ms ~= ARGV[3] or folded + 1 ~= first or last < first or last >= bound then
  return {'CONFLICT'}
end
local count = last - folded
if ARGV[8] == '1' then
  local turns = redis.call('LRANGE', KEYS[3], 0, count - 1)
  for k = 1, #turns, 500 do
    local pairs = {}
    for j = k, math.min(k + 499, #turns) do
      pairs[#pairs + 1] = folded + j
      pairs[#pairs + 1] = turns[j]
    end
    redis.call('HSET', KEYS[6], unpack(pairs))
  end
else
  -- Forget the folded turns' request ids, unless a later turn took one over.
  for k = 9, #ARGV do
    local at = tonumber(redis.call('HGET', KEYS[4], ARGV[k]))
    if at and at <= last then
      redis.call('HDEL', KEYS[4], ARGV[k])
    end
  end
end
redis.call('LTRIM', KEYS[3], count, -1)
redis.call('HSET', KEYS[1], 'summary', ARGV[6], 'folded_turns', last,
  'history_bytes', number(m.history_bytes) - ARGV[7], 'update_ms', ARGV[1],
  'version', m.version + 1)
return commit(KEYS, ARGV[2])
"""
)
