-- APPLY_APP_STATE: applies app-state writes queued in a user's outbox, in order (on a
-- cluster, where the app's state is in another slot than the commits that wrote them).
--
-- KEYS[1] the app's state
-- ARGV[1] and on: each write as its commit queued it, JSON [[key to remove, ...],
-- [key, JSON value, ...]], keys without the "app:" prefix
-- -> "OK"

for k = 1, #ARGV do
  local write = cjson.decode(ARGV[k])
  local removals, sets = write[1], write[2]
  if #removals > 0 then
    redis.call('HDEL', KEYS[1], unpack(removals))
  end
  if #sets > 0 then
    redis.call('HSET', KEYS[1], unpack(sets))
  end
end
return 'OK'
