-- Lease one delivered attempt.  KEYS[1] exec hash.  ARGV: base, id, lane, entry_id,
-- entry_attempt, lease_until_ms, now_ms, maxlen, completion_ttl
-- Returns {0, reason} (entry acked, nothing to run) or
-- {1, fence, tenant, workflow_id, workflow_json, trigger, attempt, max_attempts,
--  backoff, timeout, traceparent, attempt within the round, outputs (flat node/json list)}.
local base, id, lane, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ek = KEYS[1]
local h = redis.call('HMGET', ek, 'st', 'cx', 'a', 'seq', 'tn', 'w', 'wf', 'tr', 'ab', 'ma', 'bo',
                     'to', 'tp', 'f', 'ce')
if not h[1] then ack(base, lane, entry); return {0, 'unknown'} end
if TERMINAL[h[1]] then ack(base, lane, entry); return {0, 'terminal'} end
if h[3] ~= ARGV[5] then ack(base, lane, entry); return {0, 'stale'} end
local now = ARGV[7]
if h[2] == '1' then
  redis.call('HINCRBY', ek, 'f', 1)
  emit(base, id, now, ARGV[8], 'EXECUTION_CANCELLED', '', '', h[15] or '')
  finish(base, id, 'CANCELLED', ARGV[9])
  ack(base, lane, entry)
  return {0, 'cancelled'}
end
local fence = tonumber(h[14]) + 1
-- Leased without a stream entry (a direct run, enqueued with a hold period on the
-- delayed set so no worker takes it): the hold is over, and queue figures must not
-- count a running direct execution as delayed.
if entry == '' then redis.call('ZREM', base .. 'delayed', id) end
if h[1] ~= 'RUNNING' then
  local seq = tonumber(h[4]) + 1
  redis.call('HSET', ek, 'st', 'RUNNING', 'lu', ARGV[6], 'cn', '0', 'seq', seq, 'f', fence)
  put_event(base, id, seq, now, ARGV[8], {h[6], h[5], h[3]}, 'EXECUTION_STARTED', '', '', '')
else
  redis.call('HSET', ek, 'st', 'RUNNING', 'lu', ARGV[6], 'cn', '0', 'f', fence)
end
local round = tonumber(h[3]) - tonumber(h[9]) + 1
return {1, fence, h[5], h[6], h[7], h[8], h[3], h[10], h[11], h[12], h[13], round,
        redis.call('HGETALL', ek .. ':out')}
