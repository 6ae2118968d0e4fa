-- Leasing and reclaiming, prepended after _fair.lua (both give a place back).
-- Lease one delivered attempt (the acquire script, and take for what it reads).
-- Returns {0, reason} (entry acked, nothing to run) or
-- {1, fence, tenant, workflow_id, workflow_json, trigger, attempt, max_attempts,
--  backoff, timeout, traceparent, attempt within the round, outputs (flat node/json list)}.
--
-- ``consumer`` (acquire only; '' skips it) is the worker that read the entry.
-- The entry must still be pending: a delivery the reclaimer took over while it
-- waited in the worker is refused ({0, 'reclaimed'}; the reclaimer acked it
-- and queued a fresh entry).  Claiming it to the same consumer resets its idle
-- time, so a delivery older than the lease is not reclaimed right after this
-- lease began.  One XCLAIM ... JUSTID per acquired entry; take reads its
-- entries in the same script (idle 0), so it passes ''.
local function acquire_one(base, id, lane, entry, attempt, now, maxlen, completion_ttl,
                           consumer)
  if consumer and consumer ~= '' and entry ~= '' then
    -- pcall: a group lost with Redis' data (NOGROUP) means the entry is gone too.
    local held = redis.pcall('XCLAIM', jobs_key(base, lane), GROUP, consumer, 0, entry, 'JUSTID')
    if type(held) ~= 'table' or held.err or #held == 0 then return {0, 'reclaimed'} end
  end
  local ek = exec_key(base, id)
  local h = redis.call('HMGET', ek, 'st', 'cx', 'a', 'seq', 'tn', 'w', 'wf', 'tr', 'ab', 'ma',
                       'bo', 'to', 'tp', 'f', 'ce')
  if not h[1] then ack(base, lane, entry); return {0, 'unknown'} end
  if TERMINAL[h[1]] then ack(base, lane, entry); return {0, 'terminal'} end
  if h[3] ~= attempt then ack(base, lane, entry); return {0, 'stale'} end
  if h[2] == '1' then
    redis.call('HINCRBY', ek, 'f', '1')
    emit(base, id, now, maxlen, 'EXECUTION_CANCELLED', '', '', h[15] or '')
    finish(base, id, 'CANCELLED', completion_ttl)
    ack(base, lane, entry)
    -- Its place among the tenant's admitted jobs (_fair.lua) is given back; the
    -- scheduler's sweep promotes the next parked one.
    fair_give_back(base, h[5], id)
    return {0, 'cancelled'}
  end
  local fence = tonumber(h[14]) + 1
  -- Leased without a stream entry (a direct run, enqueued with a hold period on the
  -- delayed set so no worker takes it): the hold is over, and queue figures must not
  -- count a running direct execution as delayed.
  if entry == '' then redis.call('ZREM', base .. 'delayed', id) end
  if h[1] ~= 'RUNNING' then
    local seq = tonumber(h[4]) + 1
    redis.call('HSET', ek, 'st', 'RUNNING', 'cn', '0', 'seq', string.format('%d', seq), 'f',
               string.format('%d', fence))
    put_event(base, id, seq, now, maxlen, {h[6], h[5], h[3]}, 'EXECUTION_STARTED', '', '', '')
  else
    redis.call('HSET', ek, 'st', 'RUNNING', 'cn', '0', 'f', string.format('%d', fence))
  end
  local round = tonumber(h[3]) - tonumber(h[9]) + 1
  return {1, fence, h[5], h[6], h[7], h[8], h[3], h[10], h[11], h[12], h[13], round,
          redis.call('HGETALL', ek .. ':out')}
end

-- A dead worker's attempt whose entry was claimed and acked: requeued, or past
-- ``max_reclaims`` leases dead-lettered.  Returns 'requeued', 'dead' or
-- 'dropped' (no such execution, ended, or the entry of an older attempt).
local function reclaim_one(base, stream, id, attempt, tp, max_reclaims, now, maxlen, cap)
  if not id or id == '' then return 'dropped' end
  local ek = exec_key(base, id)
  local h = redis.call('HMGET', ek, 'st', 'a')
  if not h[1] or TERMINAL[h[1]] or h[2] ~= attempt then return 'dropped' end
  local rc = redis.call('HINCRBY', ek, 'rc', '1')
  if rc > tonumber(max_reclaims) then
    redis.call('HINCRBY', ek, 'f', '1')
    local reason = 'stalled: lease expired ' .. rc .. ' times'
    emit(base, id, now, maxlen, 'EXECUTION_FAILED', '', '',
         cjson.encode({message = reason, code = 'STALLED', retryable = false}))
    dead_letter(base, id, now, reason, '')
    fair_leave(base, redis.call('HGET', ek, 'tn'), id, tonumber(cap), now)
    return 'dead'
  end
  redis.call('XADD', stream, '*', 'x', id, 'a', attempt, 'tp', tp, 't', now)
  return 'requeued'
end
