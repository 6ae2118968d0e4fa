-- KEYS[1] exec hash.  ARGV: base, id, tenant ('' = any), now_ms, maxlen, completion_ttl,
-- channel.  Returns the status after the call, 'unknown' or 'denied'.
local base, id = ARGV[1], ARGV[2]
local h = redis.call('HMGET', KEYS[1], 'st', 'tn')
if not h[1] then return 'unknown' end
if ARGV[3] ~= '' and h[2] ~= ARGV[3] then return 'denied' end
if TERMINAL[h[1]] then return h[1] end
redis.call('HSET', KEYS[1], 'cx', '1')
if h[1] == 'RUNNING' then
  redis.call('PUBLISH', ARGV[7], id)
  return 'RUNNING'
end
-- Not running: end it now; a stream entry still waiting is acked by acquire.
redis.call('ZREM', base .. 'delayed', id)
redis.call('HINCRBY', KEYS[1], 'f', 1)
emit(base, id, ARGV[4], ARGV[5], 'EXECUTION_CANCELLED', '', '', '')
finish(base, id, 'CANCELLED', ARGV[6])
return 'CANCELLED'
