-- The Redis Cluster variants of the scripts: this file comes after _fair.lua and
-- replaces its steps that touch keys a script finds while it runs (a tenant's
-- admission keys, the parked job a freed place goes to).  Redis checks only the
-- keys in KEYS against a slot migration before the script runs; an undeclared
-- key that already moved would fail the script after its earlier writes.  So
-- the adapter reads those keys' names first and declares them, and here each
-- such key is touched only when it was declared: a premise that changed since
-- (another job heads the backlog now) leaves that step undone, harmlessly,
-- for the scheduler's sweep (docs/redis-layout.md, "On Redis Cluster").

-- Built on first use: most calls (a lease, a commit without an end) never ask.
local declared_set = nil
local function declared(key)
  if not declared_set then
    declared_set = {}
    for _, k in ipairs(KEYS) do declared_set[k] = true end
  end
  return declared_set[key]
end

-- fair_promote, for the tenant's parked jobs the caller declared: the first
-- one not declared stops it.
local function fair_promote(base, ik, pk, now, hold)
  if not declared(pk) or (hold and not declared(ik)) then return 0 end
  while true do
    local top = redis.call('ZRANGE', pk, 0, 0)
    if #top == 0 then return 0 end
    local id = top[1]
    local ek = exec_key(base, id)
    if not declared(ek) then return 0 end
    local h = redis.call('HMGET', ek, 'st', 'a', 'tp', 'ln')
    local waiting = h[1] == 'QUEUED' or h[1] == 'RETRY_SCHEDULED'
    local stream = jobs_key(base, h[4])
    if waiting and not declared(stream) then return 0 end
    redis.call('ZREM', pk, id)
    if waiting then
      if hold then redis.call('SADD', ik, id) end
      redis.call('XADD', stream, '*', 'x', id, 'a', h[2], 'tp', h[3] or '', 't', now)
      return 1
    end
  end
end

local function fair_fill(base, tn, cap, now)
  local pk = park_key(base, tn)
  local ik = in_key(base, tn)
  if not declared(pk) or (cap > 0 and not declared(ik)) then return 0 end
  local room = 1e18
  if cap > 0 then room = cap - redis.call('SCARD', ik) end
  local moved = 0
  while room > 0 and fair_promote(base, ik, pk, now, cap > 0) == 1 do
    room = room - 1
    moved = moved + 1
  end
  return moved
end

-- Undeclared admission keys: the place stays taken until the adapter's next
-- call or the sweep gives it back (it checks a full tenant's places).
local function fair_leave(base, tn, id, cap, now)
  if cap <= 0 then return end
  local ik = in_key(base, tn)
  if not declared(ik) then return end
  if redis.call('SREM', ik, id) == 1 then fair_promote(base, ik, park_key(base, tn), now, true) end
end

-- acquire does not know the tenant before it runs: the adapter gives the place
-- back afterwards (cluster_leave.lua), handing it to the next parked job.
local function fair_give_back(base, tn, id)
  local ik = in_key(base, tn)
  if declared(ik) then redis.call('SREM', ik, id) end
end

-- Left in the backlog when undeclared: promotion drops it (no longer waiting).
local function fair_unpark(base, tn, id)
  local pk = park_key(base, tn)
  if declared(pk) then redis.call('ZREM', pk, id) end
end

-- The scheduler's sweep over the tenants the adapter picked (SRANDMEMBER of
-- ``parked`` before the call) and declared with some of their places (its own
-- SRANDMEMBER) and next parked jobs.  ``tenants``: ARGV indexes ``from`` .. ``to``.
-- The places checked are the declared executions that hold one.
local function declared_execs(base)
  local out, prefix = {}, base .. 'exec:'
  for _, k in ipairs(KEYS) do
    -- An execution's other keys (``:out``, ``:ev``) give ids no place holds.
    if string.sub(k, 1, #prefix) == prefix then
      out[#out + 1] = string.sub(k, #prefix + 1)
    end
  end
  return out
end

local function fair_sweep_named(base, cap, now, from, to)
  local moved = 0
  for j = from, to do
    local tn = ARGV[j]
    local pk, ik = park_key(base, tn), in_key(base, tn)
    if declared(pk) and declared(ik) then
      if redis.call('EXISTS', pk) == 0 then
        redis.call('SREM', base .. 'parked', tn)
      else
        if cap > 0 and redis.call('SCARD', ik) >= cap then
          for _, id in ipairs(declared_execs(base)) do
            if redis.call('SISMEMBER', ik, id) == 1 then
              local st = redis.call('HGET', exec_key(base, id), 'st')
              if not st or TERMINAL[st] then redis.call('SREM', ik, id) end
            end
          end
        end
        moved = moved + fair_fill(base, tn, cap, now)
      end
    end
  end
  return moved
end
