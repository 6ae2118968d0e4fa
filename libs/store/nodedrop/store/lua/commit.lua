-- One fenced, atomic write of a worker.  KEYS[1] exec hash.  ARGV: base, id, fence,
-- lane, entry_id, now_ms, maxlen, state_ttl, completion_ttl, n_outputs,
-- (node, json)*, n_events, event tail*, status ('' = none),
-- retry_at_ms, dead_letter_reason, failed_node, commit_number, tenant_cap
-- Returns {1, first_seq}, {0, 0} when the fence refuses, or {2, 0} when this
-- commit number was applied already (a resend after a lost reply).
local base, id = ARGV[1], ARGV[2]
local ek = KEYS[1]
local h = redis.call('HMGET', ek, 'f', 'st', 'cn', 'seq', 'w', 'tn', 'a', 'o')
if h[1] ~= ARGV[3] then return {0, 0} end
local number = tonumber(ARGV[#ARGV - 1])
if number > 0 and tonumber(h[3] or '0') >= number then return {2, 0} end
if TERMINAL[h[2]] then return {0, 0} end
local lane, entry, now, maxlen = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local n_out = tonumber(ARGV[10])
local at_events = 11 + 2 * n_out
local n = tonumber(ARGV[at_events])
local i = at_events + n + 1
local status = ARGV[i]
local dead = status == 'FAILED' and ARGV[i + 2] ~= ''
-- Sequences, workflow, tenant and attempt come from the first read: one HSET
-- below writes every field this commit changes.
local seq = tonumber(h[4])
local fields = {'seq', string.format('%d', seq + n)}
if number > 0 then fields[#fields + 1] = 'cn'; fields[#fields + 1] = ARGV[#ARGV - 1] end
-- A terminal end drops the checkpoints (end_ttl); its commit carries none.
if n_out > 0 then
  local out = {}
  for j = 1, 2 * n_out do out[j] = ARGV[10 + j] end
  redis.call('HSET', ek .. ':out', unpack(out))
  -- The checkpoints hash gets the state TTL once, when this commit creates it
  -- (``o`` flags that it exists).
  if h[8] ~= '1' then
    redis.call('EXPIRE', ek .. ':out', ARGV[8])
    fields[#fields + 1] = 'o'; fields[#fields + 1] = '1'
  end
end
local first = 0
if n > 0 then
  first = seq + 1
  local tails = {}
  for j = 1, n do tails[j] = ARGV[at_events + j] end
  put_entry(base, id, first, maxlen, event_head(id, h[5], h[6], h[7]), tails)
end
if status == 'RETRY_SCHEDULED' then
  for _, v in ipairs({'st', status, 'rc', '0', 'a', string.format('%d', tonumber(h[7]) + 1)}) do
    fields[#fields + 1] = v
  end
  redis.call('HSET', ek, unpack(fields))
  redis.call('ZADD', base .. 'delayed', ARGV[i + 1], id)
  ack(base, lane, entry)
  fair_leave(base, h[6], id, tonumber(ARGV[#ARGV]), now)
elseif dead then
  redis.call('HSET', ek, unpack(fields))
  dead_letter(base, id, now, ARGV[i + 2], ARGV[i + 3])
  ack(base, lane, entry)
  fair_leave(base, h[6], id, tonumber(ARGV[#ARGV]), now)
elseif status ~= '' then
  for _, v in ipairs({'st', status}) do fields[#fields + 1] = v end
  redis.call('HSET', ek, unpack(fields))
  redis.call('HINCRBY', base .. 'stats', status, '1')
  end_ttl(base, id, ARGV[9], h[8] == '1' or n_out > 0)
  ack(base, lane, entry)
  fair_leave(base, h[6], id, tonumber(ARGV[#ARGV]), now)
elseif #fields > 2 or n > 0 then
  redis.call('HSET', ek, unpack(fields))
end
return {1, first}
