-- Replace one schedule's value only if it is still the value the caller read,
-- so a pause, a delete or another replica's write in between is never lost
-- (nor a deleted schedule written back).  KEYS[1] the schedules hash;
-- ARGV[1] schedule id, ARGV[2] the value read, ARGV[3] the new value.
-- Returns 1 when replaced, 0 when the value changed or the schedule is gone.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
