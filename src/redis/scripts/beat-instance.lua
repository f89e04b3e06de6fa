-- Renews one instance's liveness and its entry in the instance index, pruning dead entries.
--
-- KEYS[1]  instance key   (RedisKeys.instance)
-- KEYS[2]  instance index (RedisKeys.instanceIndex)
-- ARGV[1]  now, ms since the epoch (the caller's clock: scores only order and prune the index)
-- ARGV[2]  ttlMs: the instance counts as dead this long after its last heartbeat
-- ARGV[3]  instance id
-- ARGV[4]  what the instance says about itself (JSON)
--
-- Returns the number of live instances in the index.

redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
-- Every entry expires within ttlMs of its last heartbeat, so the index outlives them all.
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('ZCARD', KEYS[2])
