-- reclaim.lua on Redis Cluster, for entries the adapter claimed already
-- (XAUTOCLAIM to the reclaimer) so that their executions' keys are declared.
-- KEYS[1] jobs stream of one lane, then every key the call may touch.
-- ARGV: base, lane, max_reclaims, now_ms, maxlen, tenant_cap,
-- (entry_id, exec_id ('' = none), attempt, traceparent)*
-- Returns {requeued, dead_lettered, dropped}.
local base, lane, now = ARGV[1], ARGV[2], ARGV[4]
local requeued, dead, dropped = 0, 0, 0
for k = 7, #ARGV, 4 do
  local entry, id, attempt, tp = ARGV[k], ARGV[k + 1], ARGV[k + 2], ARGV[k + 3]
  -- Acked since the claim (the worker's commit, another reclaimer): not ours.
  if redis.call('XACK', KEYS[1], GROUP, entry) == 1 then
    local got = reclaim_one(base, KEYS[1], id, attempt, tp, ARGV[3], now, ARGV[5], ARGV[6])
    if got == 'requeued' then requeued = requeued + 1
    elseif got == 'dead' then dead = dead + 1
    else dropped = dropped + 1 end
  end
end
return {requeued, dead, dropped}
