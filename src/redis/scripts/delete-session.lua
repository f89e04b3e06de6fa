-- Ends a session: removes its record, its data and its index entry (the event logs are removed by
-- the event log, which knows their names).
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- KEYS[3]  session index of the shard (RedisKeys.sessionIndexOf)
-- ARGV[1]  session id (the index member)
--
-- Returns 1 when the session existed, 0 when it was already gone.

local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return existed
