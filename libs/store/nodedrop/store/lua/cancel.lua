-- KEYS[1] exec hash.  ARGV: base, id, tenant ('' = any), now_ms, maxlen, completion_ttl,
-- channel (the partition's shard channel), error (the EXECUTION_CANCELLED event's
-- error, JSON, kept as 'ce' for the worker that ends a running attempt), tenant_cap.
-- Returns the status after the call, 'unknown' or 'denied'.
local base, id = ARGV[1], ARGV[2]
local h = redis.call('HMGET', KEYS[1], 'st', 'tn')
if not h[1] then return 'unknown' end
if ARGV[3] ~= '' and h[2] ~= ARGV[3] then return 'denied' end
if TERMINAL[h[1]] then return h[1] end
redis.call('HSET', KEYS[1], 'cx', '1', 'ce', ARGV[8])
if h[1] == 'RUNNING' then
  -- The message carries the error, so the worker stops with the caller's reason.
  redis.call('SPUBLISH', ARGV[7], id .. '\n' .. ARGV[8])
  return 'RUNNING'
end
-- Not running: end it now; a stream entry still waiting is acked by acquire.
redis.call('ZREM', base .. 'delayed', id)
redis.call('HINCRBY', KEYS[1], 'f', '1')
emit(base, id, ARGV[4], ARGV[5], 'EXECUTION_CANCELLED', '', '', ARGV[8])
finish(base, id, 'CANCELLED', ARGV[6])
-- Parked: out of the backlog; in a stream: its place goes to the next parked job
-- now (the entry is acked unstarted when read).
fair_unpark(base, h[2], id)
fair_leave(base, h[2], id, tonumber(ARGV[9]), ARGV[4])
return 'CANCELLED'
