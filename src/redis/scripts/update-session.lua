-- Changes mutable fields of a live session record and refreshes its sliding TTL; fenced by its owner.
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- KEYS[3]  session index of the shard (RedisKeys.sessionIndexOf)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  session id (the index member)
-- ARGV[5]  fence: owner instance id, or '' for an unfenced write
-- ARGV[6]  fence: epoch
-- ARGV[7…] field, value, field, value, …; an empty value removes the field
--
-- Returns the new TTL in ms, -1 when the session is gone (nothing written: a gone session must not
-- come back as a partial hash), or -2 when the fence does not hold (nothing written).

-- @include session-lifetime
-- @include fence

local fence = checkFence(KEYS[1], ARGV[5], ARGV[6])
if fence ~= 0 then
  return fence
end
local ttl = refreshSession(KEYS[1], KEYS[2], KEYS[3], ARGV[4], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ttl < 0 then
  return -1
end
for i = 7, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return ttl
