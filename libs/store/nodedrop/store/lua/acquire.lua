-- Lease one delivered attempt.  KEYS[1] exec hash.  ARGV: base, id, lane, entry_id,
-- entry_attempt, lease_until_ms, now_ms, maxlen, completion_ttl
-- Returns {0, reason} (entry acked, nothing to run) or
-- {1, fence, tenant, workflow_id, workflow_json, trigger, attempt, max_attempts,
--  backoff, timeout, traceparent, attempt within the round, outputs (flat node/json list)}.
local base, id, lane, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ek = KEYS[1]
local h = redis.call('HMGET', ek, 'st', 'cx', 'a')
if not h[1] then ack(base, lane, entry); return {0, 'unknown'} end
if TERMINAL[h[1]] then ack(base, lane, entry); return {0, 'terminal'} end
if h[3] ~= ARGV[5] then ack(base, lane, entry); return {0, 'stale'} end
local now = ARGV[7]
if h[2] == '1' then
  redis.call('HINCRBY', ek, 'f', 1)
  emit(base, id, now, ARGV[8], 'EXECUTION_CANCELLED', '', '', '')
  finish(base, id, 'CANCELLED', ARGV[9])
  ack(base, lane, entry)
  return {0, 'cancelled'}
end
local fence = redis.call('HINCRBY', ek, 'f', 1)
redis.call('HSET', ek, 'st', 'RUNNING', 'lu', ARGV[6], 'cn', '0')
if h[1] ~= 'RUNNING' then
  emit(base, id, now, ARGV[8], 'EXECUTION_STARTED', '', '', '')
end
local c = redis.call('HMGET', ek, 'tn', 'w', 'wf', 'tr', 'a', 'ab', 'ma', 'bo', 'to', 'tp')
local round = tonumber(c[5]) - tonumber(c[6]) + 1
return {1, fence, c[1], c[2], c[3], c[4], c[5], c[7], c[8], c[9], c[10], round,
        redis.call('HGETALL', ek .. ':out')}
