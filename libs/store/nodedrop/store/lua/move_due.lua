-- KEYS[1] delayed zset.  ARGV: base, now_ms, limit.  Returns the number moved.
local base, now = ARGV[1], ARGV[2]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[3])
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local h = redis.call('HMGET', exec_key(base, id), 'st', 'a', 'tp', 'ln')
  if h[1] == 'QUEUED' or h[1] == 'RETRY_SCHEDULED' then
    redis.call('XADD', jobs_key(base, h[4]), '*', 'x', id, 'a', h[2], 'tp', h[3], 't', now)
    moved = moved + 1
  end
end
return moved
