-- Refreshes a session's sliding TTL (SessionStore.touch), optionally returning the record (load).
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  '1' to return the record, '0' not to
--
-- Returns {ttl} or {ttl, {field, value, …}}; ttl is the new TTL in ms, or -1 when the session is gone.

-- @include session-lifetime

local ttl = refreshSession(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ttl < 0 or ARGV[4] ~= '1' then
  return {ttl}
end
return {ttl, redis.call('HGETALL', KEYS[1])}
