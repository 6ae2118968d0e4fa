-- Read and lease in one call, for a worker that is busy (no BLOCK: a script cannot
-- wait): up to ``count`` new entries of this partition's job streams, lanes in the
-- order given (highest first), each leased as the acquire script does.
-- KEYS[1] the partition's first lane stream (routing).
-- ARGV: base, consumer, count, now_ms, maxlen, completion_ttl, lane+
-- Returns one item per entry read: {entry_id, lane, execution_id, attempt,
-- traceparent, enqueued_at_ms, what acquire_one returns}.
local base, consumer = ARGV[1], ARGV[2]
local left = tonumber(ARGV[3])
local out = {}
for i = 7, #ARGV do
  if left <= 0 then break end
  local lane = ARGV[i]
  local r = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', left,
                       'STREAMS', jobs_key(base, lane), '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      left = left - 1
      local f = e[2]
      if f then
        local m = {}
        for j = 1, #f, 2 do m[f[j]] = f[j + 1] end
        out[#out + 1] = {e[1], lane, m.x, m.a, m.tp or '', m.t or '0',
                         acquire_one(base, m.x, lane, e[1], m.a, ARGV[4], ARGV[5], ARGV[6])}
      end
    end
  end
end
return out
