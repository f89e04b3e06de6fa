-- Counts the live members of one shard's index (sessions or streams), dropping those past their
-- expiry score first.
--
-- KEYS[1]  the index (RedisKeys.sessionIndex or RedisKeys.streamIndex)
-- ARGV[1]  now, ms since the epoch
--
-- Returns the number of live members.

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
