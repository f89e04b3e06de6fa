-- Included by the session scripts (they cannot import one another): the one place that applies the
-- session lifetime rule, ttl = min(idleMs, createdAt + maxLifetimeMs - now), and keeps the shard's
-- session index (score = expiry) in step with it.

-- Refreshes the TTL of a session hash and of its data hash, and its score in the index (all in one
-- shard's slot). Deletes the session when it is past its maximum lifetime. Returns the new TTL in
-- ms, or -1 when the session is gone (its index entry removed too).
-- `createdAt` is the hash's field, read by the caller (false when the hash is gone).
local function refreshSessionFrom(createdAt, sessionKey, dataKey, indexKey, id, now, idleMs, maxLifetimeMs)
  if not createdAt then
    redis.call('ZREM', indexKey, id)
    return -1
  end
  local ttl = math.min(idleMs, tonumber(createdAt) + maxLifetimeMs - now)
  if ttl <= 0 then
    -- Past its lifetime but not yet expired by Redis (the idle TTL outlived the cap): end it now.
    redis.call('DEL', sessionKey, dataKey)
    redis.call('ZREM', indexKey, id)
    return -1
  end
  redis.call('PEXPIRE', sessionKey, ttl)
  redis.call('PEXPIRE', dataKey, ttl)
  redis.call('ZADD', indexKey, now + ttl, id)
  -- Every member expires within idleMs of its last refresh: the index outlives them all.
  redis.call('PEXPIRE', indexKey, idleMs + maxLifetimeMs)
  return ttl
end

local function refreshSession(sessionKey, dataKey, indexKey, id, now, idleMs, maxLifetimeMs)
  local createdAt = redis.call('HGET', sessionKey, 'createdAt')
  return refreshSessionFrom(createdAt, sessionKey, dataKey, indexKey, id, now, idleMs, maxLifetimeMs)
end

-- The first step of a request's refresh (refresh-session, touch-or-claim), on the session scripts'
-- KEYS[1..3] / ARGV[1..4] layout: one read for the principal, the lifetime and the ownership (every
-- redis.call costs a few µs), then the refresh. Returns the new TTL (-1: gone; -3: another
-- principal's, nothing refreshed) and the fields {principal, createdAt, owner, epoch, transport}.
local function touchSession(principal)
  local f = redis.call('HMGET', KEYS[1], 'principal', 'createdAt', 'owner', 'epoch', 'transport')
  if principal ~= '' and f[1] and f[1] ~= principal then
    return -3, f
  end
  return refreshSessionFrom(f[2], KEYS[1], KEYS[2], KEYS[3], ARGV[4], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])), f
end
