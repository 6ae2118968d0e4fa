-- One fenced, atomic write of a worker.  KEYS[1] exec hash.  ARGV: base, id, fence,
-- lane, entry_id, now_ms, maxlen, state_ttl, completion_ttl, n_outputs,
-- (node, json)*, n_events, event tail*, status ('' = none),
-- retry_at_ms, dead_letter_reason, failed_node, commit_number, tenant_cap
-- Returns {1, first_seq}, {0, 0} when the fence refuses, or {2, 0} when this
-- commit number was applied already (a resend after a lost reply).
local base, id = ARGV[1], ARGV[2]
local ek = KEYS[1]
local h = redis.call('HMGET', ek, 'f', 'st', 'cn', 'seq', 'w', 'tn', 'a')
if h[1] ~= ARGV[3] then return {0, 0} end
local number = tonumber(ARGV[#ARGV - 1])
if number > 0 and tonumber(h[3] or '0') >= number then return {2, 0} end
if TERMINAL[h[2]] then return {0, 0} end
local lane, entry, now, maxlen = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local i = 10
local n = tonumber(ARGV[i])
if n > 0 then
  local out = {}
  for j = 1, 2 * n do out[j] = ARGV[i + j] end
  redis.call('HSET', ek .. ':out', unpack(out))
end
i = i + 2 * n + 1
n = tonumber(ARGV[i])
-- Sequences, workflow, tenant and attempt come from the first read: one HSET
-- below writes every field this commit changes.
local seq = tonumber(h[4])
local first = 0
if n > 0 then first = seq + 1 end
if n > 0 then
  local tails = {}
  for j = 1, n do tails[j] = ARGV[i + j] end
  put_entry(base, id, first, maxlen, event_head(id, h[5], h[6], h[7]), tails)
end
local fields = {'seq', seq + n}
if number > 0 then fields[#fields + 1] = 'cn'; fields[#fields + 1] = number end
i = i + n + 1
local status = ARGV[i]
-- New checkpoints get the state TTL, unless the end below cuts every TTL anyway.
if tonumber(ARGV[10]) > 0 and (status == '' or status == 'RETRY_SCHEDULED'
    or (status == 'FAILED' and ARGV[i + 2] ~= '')) then
  redis.call('EXPIRE', ek .. ':out', ARGV[8])
end
if status == 'RETRY_SCHEDULED' then
  for _, v in ipairs({'st', status, 'rc', '0', 'a', tonumber(h[7]) + 1}) do
    fields[#fields + 1] = v
  end
  redis.call('HSET', ek, unpack(fields))
  redis.call('ZADD', base .. 'delayed', ARGV[i + 1], id)
  ack(base, lane, entry)
  fair_leave(base, h[6], id, tonumber(ARGV[#ARGV]), now)
elseif status == 'FAILED' and ARGV[i + 2] ~= '' then
  redis.call('HSET', ek, unpack(fields))
  dead_letter(base, id, now, ARGV[i + 2], ARGV[i + 3])
  ack(base, lane, entry)
  fair_leave(base, h[6], id, tonumber(ARGV[#ARGV]), now)
elseif status ~= '' then
  for _, v in ipairs({'st', status}) do fields[#fields + 1] = v end
  redis.call('HSET', ek, unpack(fields))
  redis.call('HINCRBY', base .. 'stats', status, 1)
  set_ttl(base, id, ARGV[9])
  ack(base, lane, entry)
  fair_leave(base, h[6], id, tonumber(ARGV[#ARGV]), now)
elseif n > 0 or number > 0 then
  redis.call('HSET', ek, unpack(fields))
end
return {1, first}
