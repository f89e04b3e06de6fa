-- Included by the event-log scripts. A log is kept in one of two shapes:
--   * a Redis Stream, entry ids <seq>-0 with one field d (a log written in more than one append);
--   * a sealed log: a Redis List of its messages, seq = position (1, 2, …), written when the log's
--     first append also ends it (most POST streams: the answer and the end marker in one append).
--     A new Redis Stream preallocates its first node (~4.7 KB for one small entry); the list is
--     ~250 bytes. An append to a sealed log (rare: an unfenced abandon racing a late producer)
--     turns it back into a stream first (unseal), so both shapes read the same way.

-- The type of a log's key: 'stream', 'list' or 'none'.
local function logKind(key)
  return redis.call('TYPE', key).ok
end

-- The last sequence number generated on a log, which survives trimming (XINFO's
-- last-generated-id; a sealed log is never trimmed), or 0 when the log does not exist.
local function lastSeq(key, kind)
  if kind == 'list' then
    return redis.call('LLEN', key)
  end
  if kind ~= 'stream' then
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
