-- Creates a session record unless the id is taken.
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  createdAt, ms since the epoch
-- ARGV[5…] field, value, field, value, … of the record
--
-- Returns {1, ttl} when created (ttl -1: already past its maximum lifetime, nothing stored),
-- or {0, pttl} when the id is taken (pttl: remaining life of the existing session).

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local ttl = math.min(tonumber(ARGV[2]), tonumber(ARGV[4]) + tonumber(ARGV[3]) - tonumber(ARGV[1]))
if ttl <= 0 then
  return {1, -1}
end
-- A new session starts with empty data (version 0), whatever an earlier holder of the id left.
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, ttl}
