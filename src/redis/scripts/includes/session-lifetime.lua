-- Included by the session scripts (they cannot import one another): the one place that applies the
-- session lifetime rule, ttl = min(idleMs, createdAt + maxLifetimeMs - now).

-- Refreshes the TTL of a session hash and of its data hash (same hash tag). Deletes both when the
-- session is past its maximum lifetime. Returns the new TTL in ms, or -1 when the session is gone.
local function refreshSession(sessionKey, dataKey, now, idleMs, maxLifetimeMs)
  local createdAt = redis.call('HGET', sessionKey, 'createdAt')
  if not createdAt then
    return -1
  end
  local ttl = math.min(idleMs, tonumber(createdAt) + maxLifetimeMs - now)
  if ttl <= 0 then
    -- Past its lifetime but not yet expired by Redis (the idle TTL outlived the cap): end it now.
    redis.call('DEL', sessionKey, dataKey)
    return -1
  end
  redis.call('PEXPIRE', sessionKey, ttl)
  redis.call('PEXPIRE', dataKey, ttl)
  return ttl
end
