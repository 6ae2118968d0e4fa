-- Fair admission between tenants (docs/redis-layout.md, "Fairness between
-- tenants"), prepended after _lib.lua.  Per partition, a tenant holds at most
-- ``cap`` places in the job streams (entries waiting or running), listed in
-- ``adm:<tenant>``; what is over goes to ``park:<tenant>`` and enters a stream
-- when one of the tenant's places frees.  So another tenant's job never queues
-- behind more than ``cap`` entries of a busy tenant per partition.  ``cap`` 0
-- turns admission off: every job goes straight to its stream.
--
-- Membership, not a counter: adding and removing an id twice is harmless, so
-- a requeue, a reclaim or a resent commit can never make the count drift.

-- A parked job's score: lane rank (0 = highest lane) above arrival time, so a
-- tenant's backlog is served by priority, then in arrival order.
local PARK_RANK = 1e13

-- A set, not a sorted set: up to ``cap`` members, it would be a listpack that
-- every add and removal scans (docs/benchmarks.md, "Admission's Redis work").
local function in_key(base, tn) return base .. 'adm:' .. (tn or '') end
local function park_key(base, tn) return base .. 'park:' .. (tn or '') end

local function num(x) return string.format('%.0f', x) end

-- Invariant: a tenant with parked jobs has no free place, because the script
-- that frees a place hands it to the tenant's next parked job.  So admission
-- reads only the tenant's count, and giving a place back only pops the
-- backlog.  Where a place frees without a hand-over (acquire ending a
-- cancel-flagged job, a vanished execution, a raised cap), the scheduler's
-- sweep restores the invariant; meanwhile a new job of that tenant may enter
-- before its own parked ones, never before another tenant's.

-- Pops the tenant's next parked job that still waits and puts it in its
-- stream, holding a place (``ik``) unless admission is off.  Jobs whose state
-- is gone or no longer waiting (expired, cancelled) are dropped on the way.
local function fair_promote(base, ik, pk, now, hold)
  while true do
    local top = redis.call('ZPOPMIN', pk)
    if #top == 0 then return 0 end
    local id = top[1]
    local h = redis.call('HMGET', exec_key(base, id), 'st', 'a', 'tp', 'ln')
    if h[1] == 'QUEUED' or h[1] == 'RETRY_SCHEDULED' then
      if hold then redis.call('SADD', ik, id) end
      redis.call('XADD', jobs_key(base, h[4]), '*', 'x', id, 'a', h[2], 'tp', h[3] or '',
                 't', now)
      return 1
    end
  end
end

-- Promote parked jobs of tenant ``tn`` while it has room under ``cap``
-- (cap 0: all of them, admission was turned off).
local function fair_fill(base, tn, cap, now)
  local pk = park_key(base, tn)
  local ik = in_key(base, tn)
  local room = 1e18
  if cap > 0 then room = cap - redis.call('SCARD', ik) end
  local moved = 0
  while room > 0 and fair_promote(base, ik, pk, now, cap > 0) == 1 do
    room = room - 1
    moved = moved + 1
  end
  return moved
end

-- A job becomes runnable (enqueue, a due retry or delayed run, a failed-queue
-- retry): into its lane stream when the tenant has a free place, else parked.
-- ``rank``: its lane's rank, 0 for the highest.  Returns 1 when it entered.
local function fair_admit(base, tn, id, lane, rank, attempt, tp, now, cap)
  if cap > 0 then
    local ik = in_key(base, tn)
    if redis.call('SCARD', ik) >= cap then
      redis.call('ZADD', park_key(base, tn), num(tonumber(rank) * PARK_RANK + tonumber(now)), id)
      redis.call('SADD', base .. 'parked', tn or '')
      return 0
    end
    redis.call('SADD', ik, id)
  end
  redis.call('XADD', jobs_key(base, lane), '*', 'x', id, 'a', attempt, 'tp', tp or '', 't', now)
  return 1
end

-- The execution gives up its place (its attempt ended, it was cancelled or
-- dead-lettered): the tenant's next parked job takes it.
local function fair_leave(base, tn, id, cap, now)
  if cap <= 0 then return end
  local ik = in_key(base, tn)
  local freed = redis.call('SREM', ik, id)
  -- A place an older version admitted, in its sorted set ``in:<tenant>``
  -- (docs/operations.md, "Upgrade"): given back here too, so that the older
  -- processes still running see it free.  Only reached when the set held none.
  if freed == 0 then freed = redis.call('ZREM', base .. 'in:' .. (tn or ''), id) end
  if freed == 1 then fair_promote(base, ik, park_key(base, tn), now, true) end
end

-- A job ended without its place handed over (acquire met a cancel): the
-- scheduler's sweep fills the place.
local function fair_give_back(base, tn, id)
  redis.call('SREM', in_key(base, tn), id)
end

-- A parked execution is cancelled: out of the backlog (an emptied backlog
-- leaves ``parked`` with the next sweep).
local function fair_unpark(base, tn, id)
  redis.call('ZREM', park_key(base, tn), id)
end

-- Lane rank from a lane value, given the lanes highest first as ARGV from ``at``.
local function lane_rank(lane, at)
  for i = at, #ARGV do
    if ARGV[i] == lane then return i - at end
  end
  return #ARGV - at
end

-- The scheduler's pass (with move_due): up to ``n`` tenants of ``parked``, in
-- random order.  A tenant whose backlog is gone leaves the set; one at its cap
-- first has 8 of its places, at random, checked: a place whose execution ended
-- or whose state expired (an entry acked as unknown cannot name its tenant) is
-- given back.  Then its free places are filled.
local function fair_sweep(base, cap, now, n)
  local moved = 0
  for _, tn in ipairs(redis.call('SRANDMEMBER', base .. 'parked', n)) do
    if redis.call('EXISTS', park_key(base, tn)) == 0 then
      redis.call('SREM', base .. 'parked', tn)
    else
      local ik = in_key(base, tn)
      if cap > 0 and redis.call('SCARD', ik) >= cap then
        for _, id in ipairs(redis.call('SRANDMEMBER', ik, 8)) do
          local st = redis.call('HGET', exec_key(base, id), 'st')
          if not st or TERMINAL[st] then redis.call('SREM', ik, id) end
        end
      end
      moved = moved + fair_fill(base, tn, cap, now)
    end
  end
  return moved
end
