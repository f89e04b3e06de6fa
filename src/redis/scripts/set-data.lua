-- Writes a session's application data, optionally compare-and-set on its version and fenced by its
-- owner, and refreshes the session's sliding TTL. The data hash gets the session hash's PTTL, so it
-- expires with the session.
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data), fields json and v
-- KEYS[3]  session index of the shard (RedisKeys.sessionIndexOf)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  session id (the index member)
-- ARGV[5]  '1' to write ARGV[6], '0' to clear the document (the version still moves on)
-- ARGV[6]  the serialized document
-- ARGV[7]  expected version, or '' to write unconditionally
-- ARGV[8]  fence: owner instance id, or '' for an unfenced write
-- ARGV[9]  fence: epoch
--
-- Returns {ttl, version}: version is the new version, -1 on a version conflict (nothing written),
-- -2 when the session is gone (ttl is then -1), -3 when the fence does not hold (nothing written).

-- @include session-lifetime
-- @include fence

local fence = checkFence(KEYS[1], ARGV[8], ARGV[9])
if fence == -1 then
  return {-1, -2}
end
if fence == -2 then
  return {0, -3}
end
local ttl = refreshSession(KEYS[1], KEYS[2], KEYS[3], ARGV[4], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ttl < 0 then
  return {-1, -2}
end
local version = tonumber(redis.call('HGET', KEYS[2], 'v') or '0')
if ARGV[7] ~= '' and tonumber(ARGV[7]) ~= version then
  return {ttl, -1}
end
version = version + 1
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[2], 'json', ARGV[6], 'v', version)
else
  redis.call('HDEL', KEYS[2], 'json')
  redis.call('HSET', KEYS[2], 'v', version)
end
redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
return {ttl, version}
