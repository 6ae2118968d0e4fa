-- Give back entries read but not started (a worker read more than it had slots
-- for, or drains).  KEYS[1] jobs stream of the lane.  ARGV: (entry_id, exec_id,
-- attempt, traceparent, enqueued_at)*.  Returns the number given back.
local n = 0
for k = 1, #ARGV, 5 do
  if redis.call('XACK', KEYS[1], GROUP, ARGV[k]) == 1 then
    redis.call('XADD', KEYS[1], '*', 'x', ARGV[k + 1], 'a', ARGV[k + 2], 'tp', ARGV[k + 3],
               't', ARGV[k + 4])
    n = n + 1
  end
end
return n
