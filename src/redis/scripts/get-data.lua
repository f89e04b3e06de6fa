-- Reads a live session's application data and refreshes the session's sliding TTL.
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- KEYS[3]  session index of the shard (RedisKeys.sessionIndexOf)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  session id (the index member)
--
-- Returns {-1} when the session is gone, else {ttl, json or nil, version or nil}.

-- @include session-lifetime

local ttl = refreshSession(KEYS[1], KEYS[2], KEYS[3], ARGV[4], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ttl < 0 then
  return {-1}
end
local fields = redis.call('HMGET', KEYS[2], 'json', 'v')
return {ttl, fields[1], fields[2]}
