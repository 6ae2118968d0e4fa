-- Unfenced event append.  KEYS[1] exec hash.  ARGV: base, id, now_ms, maxlen,
-- (type, node, data, error)*.  Returns the first sequence, or 0 for an unknown execution.
local base, id = ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local first = 0
for k = 5, #ARGV, 4 do
  local seq = emit(base, id, ARGV[3], ARGV[4], ARGV[k], ARGV[k + 1], ARGV[k + 2], ARGV[k + 3])
  if first == 0 then first = seq end
end
return first
