-- Drop acknowledged entries from one job stream.  KEYS[1] the stream.
-- Everything before the oldest pending entry (or, with none pending, before the
-- group's last delivered entry) was delivered and acknowledged.  Returns the
-- number of entries removed.
local pend = redis.call('XPENDING', KEYS[1], GROUP)
local threshold = pend[2]
if not threshold then
  local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
  for _, g in ipairs(groups) do
    local name, last = nil, nil
    for k = 1, #g, 2 do
      if g[k] == 'name' then name = g[k + 1] end
      if g[k] == 'last-delivered-id' then last = g[k + 1] end
    end
    if name == GROUP then threshold = last end
  end
end
if not threshold or threshold == '0-0' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', threshold)
