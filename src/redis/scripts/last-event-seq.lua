-- Reads the last sequence number written to an event log, even when trimming dropped that entry.
--
-- KEYS[1]  event stream   (RedisKeys.events)
--
-- Returns the sequence number, 0 when the log does not exist.

-- @include stream-last-seq

return lastSeq(KEYS[1])
