-- The number of events each log keeps (after trimming), in either shape (event-log-shape.lua).
--
-- KEYS     event logs of one session (RedisKeys.events)
--
-- Returns one count per key, 0 for a log that does not exist.

-- @include event-log-shape

local counts = {}
for i, key in ipairs(KEYS) do
  local kind = logKind(key)
  if kind == 'list' then
    counts[i] = redis.call('LLEN', key)
  elseif kind == 'stream' then
    counts[i] = redis.call('XLEN', key)
  else
    counts[i] = 0
  end
end
return counts
