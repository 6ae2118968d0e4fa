-- Hand a running attempt back (drain).  KEYS[1] exec hash.
-- ARGV: base, id, fence, lane, entry_id, now_ms.  Returns 1, or 0 when fenced out.
local base, id = ARGV[1], ARGV[2]
local h = redis.call('HMGET', KEYS[1], 'f', 'st', 'a', 'tp')
if h[1] ~= ARGV[3] or h[2] ~= 'RUNNING' then return 0 end
-- A new fence makes any late write of the releasing worker fail; QUEUED again, so
-- the next owner announces EXECUTION_STARTED anew.
redis.call('HINCRBY', KEYS[1], 'f', '1')
redis.call('HSET', KEYS[1], 'st', 'QUEUED')
ack(base, ARGV[4], ARGV[5])
redis.call('XADD', jobs_key(base, ARGV[4]), '*', 'x', id, 'a', h[3], 'tp', h[4], 't', ARGV[6])
return 1
