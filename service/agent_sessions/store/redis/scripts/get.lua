-- GET: a live session.
--
-- KEYS[1] meta, KEYS[2] state, … KEYS[11]: a session's eleven (prelude.lua), of which it
-- reads meta, state, user state and app state
-- ARGV[1] now_ms
-- -> {"OK", meta, state} | {"NOT_FOUND"}

local m, raw = load_meta(KEYS[1], tonumber(ARGV[1]))
if not m then
  return {'NOT_FOUND'}
end
return {'OK', raw, read_state(KEYS)}
