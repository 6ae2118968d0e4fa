-- take.lua on Redis Cluster, for the entries the adapter read already (a
-- non-blocking XREADGROUP of the partition), so that their executions' keys
-- are declared: each leased as the acquire script does.  No XCLAIM ('' for
-- the consumer, as take.lua): the entries were delivered a round trip ago, far
-- within the lease the reclaimer waits for.
-- KEYS[1] the partition's first lane stream, then every key the call may touch.
-- ARGV: base, now_ms, maxlen, completion_ttl, (entry_id, lane, execution_id, attempt)*
-- Returns what acquire_one (_acquire.lua) returns, per entry.
local out = {}
for k = 5, #ARGV, 4 do
  out[#out + 1] = acquire_one(ARGV[1], ARGV[k + 2], ARGV[k + 1], ARGV[k], ARGV[k + 3], ARGV[2],
                              ARGV[3], ARGV[4], '')
end
return out
