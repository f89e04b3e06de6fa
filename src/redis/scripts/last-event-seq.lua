-- Reads the last sequence number written to an event log, even when trimming dropped that entry.
--
-- KEYS[1]  event log   (RedisKeys.events)
--
-- Returns the sequence number, 0 when the log does not exist.

-- @include event-log-shape

return lastSeq(KEYS[1], logKind(KEYS[1]))
