-- What every script of the Redis store starts with (see __init__.py, which puts the
-- constants of the stored format before it: META, AGENT_ID, CREATE_REQUEST_ID, ENDED,
-- COMPLETED, OPEN_TURN_TAIL, ABANDONED_TAIL_BEFORE_TIME, ABANDONED_TAIL_AFTER_TIME).
--
-- The scripts that take a session's twelve keys take them in this order:
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] the user's
-- index, KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items,
-- KEYS[10] the user's state, KEYS[11] the app's state, or with APP_OUTBOX the user's
-- outbox of app-state writes (the app's state is in another cluster slot),
-- KEYS[12] the session's event log, KEYS[13] the key that exists while someone watches it.
--
-- The event log is a stream whose entry ids are 0-<sequence>: Redis numbers them from 1
-- on (XADD 0-*) and never reuses a number while the stream exists, trimmed or not.
-- Each entry's first field is its time 't' (so that trimming by age reads one field),
-- then 'k' its kind (the *_EVENT constants), then what the kind carries: 'r' run id,
-- 'i' turn index, 'q' request id, 'x' a delta's text, an item's record or a turn, 'y'
-- a committed turn's item records (a JSON array), 'm' and 's' the session after the
-- write (its meta and state as the reply carries them, JSON arrays).

-- The meta values and the same values by field name, or nil when the session is
-- missing or expired at the caller's clock (tests move that clock past Redis's).
local function load_meta(key, now)
  local raw = redis.call('HMGET', key, unpack(META))
  local expire = raw[#META]
  if not expire or tonumber(expire) <= now then
    return nil
  end
  local m = {}
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
-- keys: a session's nine keys.
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

-- The user's and (unless it is in another slot) the app's state, their keys prefixed, as
-- one flat HGETALL-like array.
local function shared_state(user_state, app_state)
  local shared = {}
  local scopes = {{USER_PREFIX, user_state}}
  if not APP_OUTBOX then
    scopes[2] = {APP_PREFIX, app_state}
  end
  for _, scope in ipairs(scopes) do
    local fields = redis.call('HGETALL', scope[2])
    for i = 1, #fields, 2 do
      shared[#shared + 1] = scope[1] .. fields[i]
      shared[#shared + 1] = fields[i + 1]
    end
  end
  return shared
end

-- The state a reply carries: the session's keys, then the shared ones.
local function read_state(keys)
  local state = redis.call('HGETALL', keys[2])
  for _, value in ipairs(shared_state(keys[10], keys[11])) do
    state[#state + 1] = value
  end
  return state
end

-- Removes the state keys ARGV[first_removal .. last_removal] and sets the key, JSON value
-- pairs ARGV[first_set .. #ARGV], each in its scope by its prefix (see scopes.py): the
-- session's, the user's, or the app's (queued in the outbox with APP_OUTBOX).
local function write_state(keys, first_removal, last_removal, first_set)
  local removals = {{}, {}, {}}
  local sets = {{}, {}, {}}
  local function scope(field)
    if string.sub(field, 1, #USER_PREFIX) == USER_PREFIX then
      return 2, string.sub(field, #USER_PREFIX + 1)
    elseif string.sub(field, 1, #APP_PREFIX) == APP_PREFIX then
      return 3, string.sub(field, #APP_PREFIX + 1)
    end
    return 1, field
  end
  for k = first_removal, last_removal do
    local s, field = scope(ARGV[k])
    removals[s][#removals[s] + 1] = field
  end
  for k = first_set, #ARGV, 2 do
    local s, field = scope(ARGV[k])
    sets[s][#sets[s] + 1] = field
    sets[s][#sets[s] + 1] = ARGV[k + 1]
  end
  if APP_OUTBOX and (#removals[3] > 0 or #sets[3] > 0) then
    redis.call('RPUSH', keys[11], cjson.encode({removals[3], sets[3]}))
    removals[3], sets[3] = {}, {}
  end
  local targets = {keys[2], keys[10], keys[11]}
  for s = 1, 3 do
    for i = 1, #removals[s], 1000 do
      redis.call('HDEL', targets[s], unpack(removals[s], i, math.min(i + 999, #removals[s])))
    end
    for i = 1, #sets[s], 1000 do
      redis.call('HSET', targets[s], unpack(sets[s], i, math.min(i + 999, #sets[s])))
    end
  end
end

-- Keeps a key shared by the user's sessions as long as the longest-lived of them.
local function expire_shared(key, expire)
  if redis.call('PEXPIRETIME', key) < expire then
    redis.call('PEXPIREAT', key, expire)
  end
end

-- Drops the log's entries older than oldest_ms from its head (entries are appended in
-- time order, give or take the clocks of the replicas that write them).
local function trim_aged(key, oldest_ms)
  local head = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if #head == 0 or tonumber(head[1][2][2]) >= oldest_ms then
    return
  end
  local start = '-'
  while true do
    local page = redis.call('XRANGE', key, start, '+', 'COUNT', 100)
    if #page == 0 then
      return
    end
    for _, entry in ipairs(page) do
      if tonumber(entry[2][2]) >= oldest_ms then
        redis.call('XTRIM', key, 'MINID', entry[1])
        return
      end
    end
    start = '(' .. page[#page][1]
  end
end

-- Appends events (each a list of field, value pairs after 't') to a session's log, keeps
-- its window, and expires it with the session; returns the last entry's id.
-- now_text: the caller's clock as ARGV carries it.
local function log_events(key, now_text, expire, events)
  local id
  for _, fields in ipairs(events) do
    id = redis.call('XADD', key, 'MAXLEN', EVENTS_MAX, '0-*', 't', now_text, unpack(fields))
  end
  trim_aged(key, tonumber(now_text) - EVENTS_MAX_AGE_MS)
  redis.call('PEXPIREAT', key, expire)
  return id
end

-- Ends every write: recomputes the expiry from the stored fields, reads the reply,
-- logs the write's events, then expires the session's keys and indexes it by activity.
-- The reply is read before PEXPIREAT because an expiry already past deletes the keys at
-- once. An event with 'session' set carries the session of the reply, without its summary
-- (up to kilobytes, in every event) unless 'session' is SUMMARY. Returns the reply and the
-- id of the last event logged.
-- keys: a session's twelve keys; ARGV[1] is every writing script's now_ms.
local function commit(keys, session_id, events)
  local t = redis.call('HMGET', keys[1], 'create_ms', 'ttl_ms', 'activity_ms', 'idle_ms')
  local expire = math.min(t[1] + t[2], t[3] + t[4])
  redis.call('HSET', keys[1], 'expire_ms', expire)
  local reply = {'OK', redis.call('HMGET', keys[1], unpack(META)), read_state(keys)}
  local event_id
  if events then
    for _, fields in ipairs(events) do
      if fields.session then
        local meta = reply[2]
        if fields.session ~= SUMMARY then
          meta = {unpack(meta)}
          meta[SUMMARY] = ''
        end
        fields[#fields + 1] = 'm'
        fields[#fields + 1] = cjson.encode(meta)
        fields[#fields + 1] = 's'
        fields[#fields + 1] = cjson.encode(reply[3])
      end
    end
    event_id = log_events(keys[12], ARGV[1], expire, events)
  end
  for _, i in ipairs({1, 2, 3, 4, 6, 7, 8, 9}) do
    redis.call('PEXPIREAT', keys[i], expire)
  end
  redis.call('ZADD', keys[5], t[3], session_id)
  -- The index and the user's state live as long as the longest-lived of the user's
  -- sessions (-1: no expiry yet; -2: no key, and nothing to expire).
  expire_shared(keys[5], expire)
  local longest = redis.call('PEXPIRETIME', keys[5])
  expire_shared(keys[10], longest)
  if APP_OUTBOX then
    expire_shared(keys[11], longest)
  end
  return reply, event_id
end

-- The running turn closed as FAILED when its run's lease ran out (to write back as the
-- last turn), nil when no turn runs, false while it still runs (the caller refuses).
-- now_text: the caller's clock as ARGV carries it (a Lua number would print as 1.7e+12).
local function abandoned_turn(keys, m, now_text)
  if tonumber(m.run_index) == 0 then
    return nil
  end
  if tonumber(m.lease_ms) > tonumber(now_text) then
    return false
  end
  return close_turn(redis.call('LINDEX', keys[3], -1),
    ABANDONED_TAIL_BEFORE_TIME .. now_text .. ABANDONED_TAIL_AFTER_TIME)
end

-- Forgets the client ids of item records about to be removed.
local function forget_item_ids(keys, records)
  for _, record in ipairs(records) do
    local id = cjson.decode(record)['i']
    if id and id ~= '' then
      redis.call('HDEL', keys[8], id)
    end
  end
end
