-- What every script of the Redis store starts with (see __init__.py, which puts the
-- constants of the stored format before it: META, AGENT_ID, CREATE_REQUEST_ID, ENDED,
-- COMPLETED, OPEN_TURN_TAIL, ABANDONED_TAIL_BEFORE_TIME, ABANDONED_TAIL_AFTER_TIME).
--
-- The scripts that take a session's nine keys take them in this order:
-- KEYS[1] meta, KEYS[2] state, KEYS[3] turns, KEYS[4] requests, KEYS[5] the user's
-- index, KEYS[6] archive, KEYS[7] items, KEYS[8] item_ids, KEYS[9] archived_items.

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

-- Ends every write: recomputes the expiry from the stored fields, reads the reply,
-- then expires the session's keys and indexes it by activity. The reply is read
-- before PEXPIREAT because an expiry already past deletes the keys at once.
-- keys: a session's nine keys.
local function commit(keys, session_id)
  local t = redis.call('HMGET', keys[1], 'create_ms', 'ttl_ms', 'activity_ms', 'idle_ms')
  local expire = math.min(t[1] + t[2], t[3] + t[4])
  redis.call('HSET', keys[1], 'expire_ms', expire)
  local reply = {
    'OK', redis.call('HMGET', keys[1], unpack(META)), redis.call('HGETALL', keys[2])
  }
  for _, i in ipairs({1, 2, 3, 4, 6, 7, 8, 9}) do
    redis.call('PEXPIREAT', keys[i], expire)
  end
  redis.call('ZADD', keys[5], t[3], session_id)
  -- The index lives as long as its longest-lived session (-1: no expiry yet).
  if redis.call('PEXPIRETIME', keys[5]) < expire then
    redis.call('PEXPIREAT', keys[5], expire)
  end
  return reply
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
