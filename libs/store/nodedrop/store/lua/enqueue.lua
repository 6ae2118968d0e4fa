-- KEYS[1] exec hash (routing).  ARGV: base, id, tenant, workflow_id, workflow_json,
-- trigger_json, lane, max_attempts, backoff_s, timeout_s, traceparent, run_at_ms,
-- now_ms, state_ttl, maxlen, n_outputs, (node, outputs_json)*, attempt, attempt_base,
-- tenant_cap, lane_rank (attempt: the attempt to start at: 1 for a new execution,
-- the recorded one when orphan recovery re-enqueues an execution Redis lost).
-- Returns {created (0|1), status}.
local base, id = ARGV[1], ARGV[2]
local ek = KEYS[1]
local st = redis.call('HGET', ek, 'st')
if st then return {0, st} end
local now, ttl = ARGV[13], ARGV[14]
local a, ab = ARGV[#ARGV - 3], ARGV[#ARGV - 2]
redis.call('HSET', ek, 'st', 'QUEUED', 'tn', ARGV[3], 'w', ARGV[4], 'wf', ARGV[5], 'tr', ARGV[6],
  'ln', ARGV[7], 'a', a, 'ab', ab, 'ma', ARGV[8], 'bo', ARGV[9], 'to', ARGV[10], 'tp', ARGV[11],
  'f', '0', 'cx', '0', 'seq', '1', 'rc', '0')
local n = tonumber(ARGV[16])
if n > 0 then
  local out = {}
  for i = 0, n - 1 do
    out[#out + 1] = ARGV[17 + 2 * i]
    out[#out + 1] = ARGV[18 + 2 * i]
  end
  redis.call('HSET', ek .. ':out', unpack(out))
  redis.call('HSET', ek, 'o', '1')
end
put_event(base, id, 1, now, ARGV[15], {ARGV[4], ARGV[3], a}, 'EXECUTION_QUEUED', '', '', '')
redis.call('EXPIRE', ek, ttl)
redis.call('EXPIRE', ek .. ':ev', ttl)
-- The checkpoints hash exists only with outputs to resume after; the commit that
-- creates it later gives it its TTL.
if n > 0 then redis.call('EXPIRE', ek .. ':out', ttl) end
if tonumber(ARGV[12]) > tonumber(now) then
  redis.call('ZADD', base .. 'delayed', ARGV[12], id)
else
  fair_admit(base, ARGV[3], id, ARGV[7], ARGV[#ARGV], a, ARGV[11], now, tonumber(ARGV[#ARGV - 1]))
end
return {1, 'QUEUED'}
