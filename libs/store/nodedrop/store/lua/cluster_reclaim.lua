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
    local ek = exec_key(base, id)
    local h = id ~= '' and redis.call('HMGET', ek, 'st', 'a') or {}
    if not h[1] or TERMINAL[h[1]] or h[2] ~= attempt then
      dropped = dropped + 1
    else
      local rc = redis.call('HINCRBY', ek, 'rc', 1)
      if rc > tonumber(ARGV[3]) then
        redis.call('HINCRBY', ek, 'f', 1)
        local reason = 'stalled: lease expired ' .. rc .. ' times'
        emit(base, id, now, ARGV[5], 'EXECUTION_FAILED', '', '',
             cjson.encode({message = reason, code = 'STALLED', retryable = false}))
        dead_letter(base, id, now, reason, '')
        fair_leave(base, redis.call('HGET', ek, 'tn'), id, tonumber(ARGV[6]), now)
        dead = dead + 1
      else
        redis.call('XADD', KEYS[1], '*', 'x', id, 'a', attempt, 'tp', tp, 't', now)
        requeued = requeued + 1
      end
    end
  end
end
return {requeued, dead, dropped}
