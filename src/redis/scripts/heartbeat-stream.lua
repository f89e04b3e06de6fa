-- Keeps a stream record alive if the calling instance still holds it, and its index entry in step.
--
-- KEYS[1]  holder hash    (RedisKeys.holder)
-- KEYS[2]  stream index of the shard (RedisKeys.streamIndexOf)
-- ARGV[1]  heartbeatTtlMs
-- ARGV[2]  instanceId of the caller
-- ARGV[3]  now, ms since the epoch (the new lastSeenAt)
-- ARGV[4]  index member `<sessionId> <streamId>`
--
-- Returns 1 when refreshed, 0 when the caller does not hold the stream (any more).

if redis.call('HGET', KEYS[1], 'instanceId') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'lastSeenAt', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[1]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
