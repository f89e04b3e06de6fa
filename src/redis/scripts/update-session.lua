-- Changes mutable fields of a live session record and refreshes its sliding TTL.
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4…] field, value, field, value, …; an empty value removes the field
--
-- Returns the new TTL in ms, or -1 when the session is gone (nothing written: a gone session must not
-- come back as a partial hash).

-- @include session-lifetime

local ttl = refreshSession(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ttl < 0 then
  return -1
end
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return ttl
