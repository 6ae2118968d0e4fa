-- Put one dead-lettered execution back in the failed queue after Redis lost its
-- data (the API rebuilds the queue from PostgreSQL).  KEYS[1] exec hash.
-- ARGV: base, id, tenant, workflow_id, workflow_json, trigger_json, lane,
-- max_attempts, backoff_s, timeout_s, traceparent, state_ttl, attempt,
-- attempt_base, last_sequence, reason, failed_node, fail_time_ms, n_outputs,
-- (node, outputs_json)*
-- Returns 1 when restored, 0 when Redis knows the execution (nothing changed).
-- No event is written: the history holds them; a retry's events continue
-- after last_sequence.
local base, id = ARGV[1], ARGV[2]
local ek = KEYS[1]
if redis.call('EXISTS', ek) == 1 then return 0 end
redis.call('HSET', ek, 'st', 'FAILED', 'tn', ARGV[3], 'w', ARGV[4], 'wf', ARGV[5], 'tr', ARGV[6],
  'ln', ARGV[7], 'a', ARGV[13], 'ab', ARGV[14], 'ma', ARGV[8], 'bo', ARGV[9], 'to', ARGV[10],
  'tp', ARGV[11], 'f', '0', 'cx', '0', 'seq', ARGV[15], 'rc', '0', 'fr', ARGV[16],
  'fn', ARGV[17])
local n = tonumber(ARGV[19])
if n > 0 then
  local out = {}
  for i = 0, n - 1 do
    out[#out + 1] = ARGV[20 + 2 * i]
    out[#out + 1] = ARGV[21 + 2 * i]
  end
  redis.call('HSET', ek .. ':out', unpack(out))
  redis.call('EXPIRE', ek .. ':out', ARGV[12])
  redis.call('HSET', ek, 'o', '1')
end
redis.call('EXPIRE', ek, ARGV[12])
redis.call('ZADD', base .. 'failed', ARGV[18], id)
return 1
