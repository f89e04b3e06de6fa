-- Included by the event-log scripts: the last sequence number generated on an event stream, which
-- survives trimming (XINFO's last-generated-id), or 0 when the stream does not exist.
local function lastSeq(key)
  if redis.call('EXISTS', key) == 0 then
    return 0
  end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return tonumber(string.match(info[i + 1], '^(%d+)-'))
    end
  end
  return 0
end
