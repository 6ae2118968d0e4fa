-- Unfenced event append.  KEYS[1] exec hash.  ARGV: base, id, now_ms, maxlen,
-- (type, node, data, error)*.  Returns the first sequence, or 0 for an unknown execution.
local base, id = ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return emit_args(base, id, ARGV[3], ARGV[4], (#ARGV - 4) / 4, 5)
