-- Shared helpers, prepended to every script at load time (static text only).
-- Every key is derived from the partition base (e.g. "nd:{p07}:"), so a
-- script stays inside one hash slot.
local GROUP = 'workers'

local function exec_key(base, id) return base .. 'exec:' .. id end

local function jobs_key(base, lane)
  if lane == '0' or lane == '' or lane == false then return base .. 'jobs' end
  return base .. 'jobs:' .. lane
end

local TERMINAL = {COMPLETED = true, FAILED = true, CANCELLED = true, TIMED_OUT = true}

-- An event entry holds one field, 'v': a JSON array, the execution's head once
-- ([first sequence, execution id, workflow id, tenant id, attempt]) and then
-- five items per event (type, time ms, node, data, error), for the events of one
-- script call with consecutive sequences (records.decode_value decodes it).
-- One entry per call instead of one per event: a commit's events cost two XADDs,
-- whatever their number.  The worker sends its events' tails encoded already.
local function event_head(id, w, tn, a)
  local s = cjson.encode({id, w or '', tn or '', a or '1'})
  return string.sub(s, 2, -2)
end

local function event_tail(typ, now, node, data, err)
  return string.sub(cjson.encode({typ, now, node, data, err}), 2, -2)
end

-- Writes the events ``first`` .. ``first + #tails - 1`` (sequences the caller
-- reserved) as one entry: to the execution's stream, entry id "<last sequence>-0"
-- (so XRANGE from "(<n>-0" finds every entry holding an event after n), and to
-- the partition's capped stream.
local function put_entry(base, id, first, maxlen, head, tails)
  -- string.format('%d'): a number given to redis.call or joined to a string is
  -- written with '%.17g', which costs twice as much.
  local v = string.format('[%d,', first) .. head .. ',' .. table.concat(tails, ',') .. ']'
  redis.call('XADD', exec_key(base, id) .. ':ev', string.format('%d-0', first + #tails - 1), 'v', v)
  redis.call('XADD', base .. 'events', 'MAXLEN', '~', maxlen, '*', 'v', v)
end

-- ``h`` holds the execution's workflow id, tenant id and attempt.
local function put_event(base, id, seq, now, maxlen, h, typ, node, data, err)
  put_entry(base, id, seq, maxlen, event_head(id, h[1], h[2], h[3]),
            {event_tail(typ, now, node, data, err)})
end

-- Append ``n`` events given in ARGV from index ``at`` as (type, node, data, error)
-- groups, as one entry; one sequence reservation for all.  Returns the first
-- sequence (0 if n = 0).
local function emit_args(base, id, now, maxlen, n, at)
  if n == 0 then return 0 end
  local ek = exec_key(base, id)
  local last = redis.call('HINCRBY', ek, 'seq', n)
  local h = redis.call('HMGET', ek, 'w', 'tn', 'a')
  local first = last - n + 1
  local tails = {}
  for j = 0, n - 1 do
    local k = at + 4 * j
    tails[j + 1] = event_tail(ARGV[k], now, ARGV[k + 1], ARGV[k + 2], ARGV[k + 3])
  end
  put_entry(base, id, first, maxlen, event_head(id, h[1], h[2], h[3]), tails)
  return first
end

-- One event without data; returns its sequence.
local function emit(base, id, now, maxlen, typ, node, data, err)
  local ek = exec_key(base, id)
  local seq = redis.call('HINCRBY', ek, 'seq', '1')
  local h = redis.call('HMGET', ek, 'w', 'tn', 'a')
  put_event(base, id, seq, now, maxlen, h, typ, node, data, err)
  return seq
end

local function set_ttl(base, id, ttl)
  local ek = exec_key(base, id)
  redis.call('EXPIRE', ek, ttl)
  redis.call('EXPIRE', ek .. ':out', ttl)
  redis.call('EXPIRE', ek .. ':ev', ttl)
end

-- XACK only: acknowledged entries stay until the scheduler's trim (XTRIM MINID
-- below the oldest pending entry), which is cheaper than an XDEL per job and
-- keeps the group's lag exact.
local function ack(base, lane, entry)
  if entry ~= '' then
    redis.call('XACK', jobs_key(base, lane), GROUP, entry)
  end
end

-- The TTL cut of a terminal execution.  Its checkpoints are dropped: nothing
-- resumes a terminal execution (only the failed queue's do, and those are not
-- terminal), and its outputs are in its events.  ``has_out`` false: the exec
-- hash's ``o`` flag says no checkpoint was written, so there is nothing to drop.
local function end_ttl(base, id, ttl, has_out)
  local ek = exec_key(base, id)
  redis.call('EXPIRE', ek, ttl)
  redis.call('EXPIRE', ek .. ':ev', ttl)
  if has_out ~= false then redis.call('DEL', ek .. ':out') end
end

-- Ends an execution in a terminal status: counters, TTL cut.
local function finish(base, id, status, completion_ttl)
  redis.call('HSET', exec_key(base, id), 'st', status)
  redis.call('HINCRBY', base .. 'stats', status, '1')
  end_ttl(base, id, completion_ttl)
end

local function dead_letter(base, id, now, reason, node)
  redis.call('HSET', exec_key(base, id), 'st', 'FAILED', 'fr', reason, 'fn', node)
  redis.call('HINCRBY', base .. 'stats', 'FAILED', '1')
  redis.call('ZADD', base .. 'failed', now, id)
end
