-- Requeue one dead-lettered execution as a fresh round of attempts, resuming after
-- its completed nodes.  KEYS[1] exec hash.  ARGV: base, id, now_ms, maxlen, state_ttl,
-- tenant_cap, lane+ (highest first)
-- Returns 1 when requeued, 0 when not in the failed queue or its state expired.
local base, id, now = ARGV[1], ARGV[2], ARGV[3]
if not redis.call('ZSCORE', base .. 'failed', id) then return 0 end
redis.call('ZREM', base .. 'failed', id)
local h = redis.call('HMGET', KEYS[1], 'st', 'a', 'tp', 'ln', 'tn')
if h[1] ~= 'FAILED' then return 0 end
local a = tonumber(h[2]) + 1
redis.call('HSET', KEYS[1], 'st', 'QUEUED', 'a', a, 'ab', a, 'rc', '0', 'cx', '0', 'ce', '', 'fr', '',
           'fn', '')
redis.call('HINCRBY', KEYS[1], 'f', '1')
emit(base, id, now, ARGV[4], 'EXECUTION_QUEUED', '', '', '')
set_ttl(base, id, ARGV[5])
fair_admit(base, h[5], id, h[4], lane_rank(h[4], 7), a, h[3], now, tonumber(ARGV[6]))
return 1
