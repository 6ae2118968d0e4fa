-- KEYS[1] delayed zset.  ARGV: base, now_ms, limit, tenant_cap, tenants to sweep,
-- lane+ (highest first).  Returns the number moved onto a stream.
local base, now = ARGV[1], ARGV[2]
local cap = tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[3])
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local h = redis.call('HMGET', exec_key(base, id), 'st', 'a', 'tp', 'ln', 'tn')
  if h[1] == 'QUEUED' or h[1] == 'RETRY_SCHEDULED' then
    moved = moved + fair_admit(base, h[5], id, h[4], lane_rank(h[4], 6), h[2], h[3], now, cap)
  end
end
return moved + fair_sweep(base, cap, now, tonumber(ARGV[5]))
