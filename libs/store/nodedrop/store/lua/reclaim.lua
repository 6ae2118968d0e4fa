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
  local got = reclaim_one(base, KEYS[1], id, attempt, tp, ARGV[4], now, ARGV[7], ARGV[8])
  if got == 'requeued' then requeued = requeued + 1
  elseif got == 'dead' then dead = dead + 1
  else dropped = dropped + 1 end
end
return {requeued, dead, dropped}
