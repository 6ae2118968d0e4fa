-- move_due.lua on Redis Cluster, for the due executions and the tenants to
-- sweep the adapter read before the call, so that their keys are declared.
-- KEYS[1] delayed zset, then every key the call may touch.
-- ARGV: base, now_ms, tenant_cap, n_due, exec_id*, n_tenants, tenant*, lane+
-- (highest first).  Returns the number moved onto a stream.
local base, now = ARGV[1], ARGV[2]
local cap = tonumber(ARGV[3])
local n_due = tonumber(ARGV[4])
local n_tenants = tonumber(ARGV[5 + n_due])
local lanes_at = 6 + n_due + n_tenants
local moved = 0
for j = 5, 4 + n_due do
  local id = ARGV[j]
  -- Still due: a cancel or another pass may have taken it since it was read.
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= tonumber(now) then
    local h = redis.call('HMGET', exec_key(base, id), 'st', 'a', 'tp', 'ln', 'tn')
    if h[1] == 'QUEUED' or h[1] == 'RETRY_SCHEDULED' then
      local ready = declared(jobs_key(base, h[4]))
      if cap > 0 then
        ready = ready and declared(in_key(base, h[5])) and declared(park_key(base, h[5]))
      end
      -- Its admission keys undeclared: it stays due for the next pass.
      if ready then
        redis.call('ZREM', KEYS[1], id)
        moved = moved + fair_admit(base, h[5], id, h[4], lane_rank(h[4], lanes_at), h[2], h[3],
                                   now, cap)
      end
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return moved + fair_sweep_named(base, cap, now, 6 + n_due, 5 + n_due + n_tenants)
