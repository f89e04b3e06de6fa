-- Keeps a stream record alive if the calling instance still holds it.
--
-- KEYS[1]  holder hash    (RedisKeys.holder)
-- ARGV[1]  heartbeatTtlMs
-- ARGV[2]  instanceId of the caller
-- ARGV[3]  now, ms since the epoch (the new lastSeenAt)
--
-- Returns the record's remaining TTL in ms: ARGV[1] when refreshed, the other holder's PTTL when
-- another instance holds it, or -2 when there is no record (so the caller can fix the stream index).

if redis.call('HGET', KEYS[1], 'instanceId') ~= ARGV[2] then
  return redis.call('PTTL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'lastSeenAt', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return tonumber(ARGV[1])
