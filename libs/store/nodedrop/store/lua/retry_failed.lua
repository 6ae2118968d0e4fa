-- Requeue one dead-lettered execution as a fresh round of attempts, resuming after
-- its completed nodes.  KEYS[1] exec hash.  ARGV: base, id, now_ms, maxlen, state_ttl
-- Returns 1 when requeued, 0 when not in the failed queue or its state expired.
local base, id, now = ARGV[1], ARGV[2], ARGV[3]
if not redis.call('ZSCORE', base .. 'failed', id) then return 0 end
redis.call('ZREM', base .. 'failed', id)
local h = redis.call('HMGET', KEYS[1], 'st', 'a', 'tp', 'ln')
if h[1] ~= 'FAILED' then return 0 end
local a = tonumber(h[2]) + 1
redis.call('HSET', KEYS[1], 'st', 'QUEUED', 'a', a, 'ab', a, 'rc', '0', 'cx', '0', 'ce', '', 'fr', '',
           'fn', '', 'ft', '0')
redis.call('HINCRBY', KEYS[1], 'f', 1)
emit(base, id, now, ARGV[4], 'EXECUTION_QUEUED', '', '', '')
set_ttl(base, id, ARGV[5])
redis.call('XADD', jobs_key(base, h[4]), '*', 'x', id, 'a', a, 'tp', h[3], 't', now)
return 1
