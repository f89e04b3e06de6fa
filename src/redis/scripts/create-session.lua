-- Creates a session record unless the id is taken, and enters it in its shard's index.
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- KEYS[3]  session index of the shard (RedisKeys.sessionIndexOf)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  session id (the index member)
-- ARGV[5]  createdAt, ms since the epoch
-- ARGV[6…] field, value, field, value, … of the record
--
-- Returns {1, ttl} when created (ttl -1: already past its maximum lifetime, nothing stored),
-- or {0, pttl} when the id is taken (pttl: remaining life of the existing session).

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local ttl = math.min(tonumber(ARGV[2]), tonumber(ARGV[5]) + tonumber(ARGV[3]) - tonumber(ARGV[1]))
if ttl <= 0 then
  return {1, -1}
end
-- A new session starts with empty data (version 0), whatever an earlier holder of the id left.
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[3], tonumber(ARGV[1]) + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]) + tonumber(ARGV[3]))
return {1, ttl}
