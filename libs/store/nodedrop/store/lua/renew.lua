-- Heartbeat.  KEYS[1] exec hash.  ARGV: base, fence, lane, entry_id, consumer
-- Returns {ok, cancel_flag, cancel error JSON}: ok 1 renewed, 2 the attempt already ended under this
-- fence (its last commit landed first), 0 refused: another owner holds the fence.
-- XCLAIM to the same consumer resets the entry's idle time, so the reclaimer
-- (XAUTOCLAIM past the lease) only takes silent entries.
local h = redis.call('HMGET', KEYS[1], 'f', 'cx', 'st', 'ce')
if h[1] ~= ARGV[2] then return {0, h[2] == '1' and 1 or 0, h[4] or ''} end
if h[3] ~= 'RUNNING' then return {2, 0, ''} end
redis.call('XCLAIM', jobs_key(ARGV[1], ARGV[3]), GROUP, ARGV[5], 0, ARGV[4], 'JUSTID')
return {1, h[2] == '1' and 1 or 0, h[4] or ''}
