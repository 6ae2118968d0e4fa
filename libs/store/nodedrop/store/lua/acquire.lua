-- Lease one delivered attempt.  KEYS[1] exec hash.  ARGV: base, id, lane, entry_id,
-- entry_attempt, now_ms, maxlen, completion_ttl, consumer
-- Returns what acquire_one (_lib.lua) returns.
return acquire_one(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
                   ARGV[9])
