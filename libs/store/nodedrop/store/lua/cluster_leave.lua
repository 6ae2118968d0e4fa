-- The place of an execution acquire ended (a cancel met it) is given back, on
-- Redis Cluster, where acquire could not declare the tenant's keys; as on one
-- Redis, the scheduler's sweep fills it.  KEYS[1] exec hash, then the tenant's
-- admission keys.  ARGV: base, id, tenant.  Returns 1 when the place was given back.
local st = redis.call('HGET', KEYS[1], 'st')
-- Still running or waiting: the place is its own.
if st and not TERMINAL[st] then return 0 end
local ik = in_key(ARGV[1], ARGV[3])
if not declared(ik) then return 0 end
return redis.call('SREM', ik, ARGV[2])
