-- KEYS[1] failed zset.  ARGV: base, completion_ttl, all (0|1), id*.  Returns the count.
local base = ARGV[1]
local ids = {}
if ARGV[3] == '1' then
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
else
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    set_ttl(base, id, ARGV[2])
    n = n + 1
  end
end
return n
