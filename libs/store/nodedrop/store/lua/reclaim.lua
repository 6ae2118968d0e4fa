-- Requeue entries of dead workers.  KEYS[1] jobs stream of one lane.
-- ARGV: base, lane, min_idle_ms, max_reclaims, limit, now_ms, maxlen, tenant_cap
-- Returns {requeued, dead_lettered, dropped}.
local base, lane, now = ARGV[1], ARGV[2], ARGV[6]
local r = redis.call('XAUTOCLAIM', KEYS[1], GROUP, 'reclaimer', ARGV[3], '0-0', 'COUNT', ARGV[5])
local requeued, dead, dropped = 0, 0, 0
for _, e in ipairs(r[2]) do
  local entry, f = e[1], e[2]
  local id, attempt, tp = nil, '1', ''
  if f then
    for k = 1, #f, 2 do
      if f[k] == 'x' then id = f[k + 1]
      elseif f[k] == 'a' then attempt = f[k + 1]
      elseif f[k] == 'tp' then tp = f[k + 1] end
    end
  end
  ack(base, lane, entry)
  local st = id and redis.call('HGET', exec_key(base, id), 'st')
  if not st or TERMINAL[st] or redis.call('HGET', exec_key(base, id), 'a') ~= attempt then
    dropped = dropped + 1
  else
    local ek = exec_key(base, id)
    local rc = redis.call('HINCRBY', ek, 'rc', 1)
    if rc > tonumber(ARGV[4]) then
      redis.call('HINCRBY', ek, 'f', 1)
      local reason = 'stalled: lease expired ' .. rc .. ' times'
      emit(base, id, now, ARGV[7], 'EXECUTION_FAILED', '', '',
           cjson.encode({message = reason, code = 'STALLED', retryable = false}))
      dead_letter(base, id, now, reason, '')
      fair_leave(base, redis.call('HGET', ek, 'tn'), id, tonumber(ARGV[8]), now)
      dead = dead + 1
    else
      redis.call('XADD', KEYS[1], '*', 'x', id, 'a', attempt, 'tp', tp, 't', now)
      requeued = requeued + 1
    end
  end
end
return {requeued, dead, dropped}
