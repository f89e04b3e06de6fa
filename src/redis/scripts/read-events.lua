-- Reads the events of a log after a sequence number, in either shape (event-log-shape.lua).
--
-- KEYS[1]  event log   (RedisKeys.events)
-- ARGV[1]  the sequence number to read after (0: from the start)
--
-- Returns {seq, data, seq, data, …}: the kept events with seq > ARGV[1], in order (all kept events
-- when the log was trimmed past it); {} when the log does not exist.

-- @include event-log-shape

local after = tonumber(ARGV[1])
local kind = logKind(KEYS[1])
local out = {}
if kind == 'list' then
  local items = redis.call('LRANGE', KEYS[1], after, -1)
  for i = 1, #items do
    out[#out + 1] = after + i
    out[#out + 1] = items[i]
  end
elseif kind == 'stream' then
  local start = '-'
  if after > 0 then
    start = string.format('(%d-0', after)
  end
  for _, entry in ipairs(redis.call('XRANGE', KEYS[1], start, '+')) do
    local fields = entry[2]
    local data = ''
    for i = 1, #fields, 2 do
      if fields[i] == 'd' then
        data = fields[i + 1]
      end
    end
    out[#out + 1] = tonumber(string.match(entry[1], '^(%d+)-'))
    out[#out + 1] = data
  end
end
return out
