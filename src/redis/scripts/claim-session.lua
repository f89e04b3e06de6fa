-- Makes an instance the owner of a session if its ownership is still the one the caller saw
-- (compare-and-set on owner and epoch), bumping the epoch, and refreshes the session's sliding TTL.
-- Only Streamable HTTP sessions can be claimed (a legacy session lives and dies with its stream).
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- KEYS[3]  session index of the shard (RedisKeys.sessionIndexOf)
-- KEYS[4]  holder hash of the standalone stream (RedisKeys.holder; same slot)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  session id (the index member)
-- ARGV[5]  claimant instance id
-- ARGV[6]  expected owner ('' = released)
-- ARGV[7]  expected epoch
-- ARGV[8]  principal the session must belong to, or '' for any
--
-- Returns {-1} when the session is gone, another principal's or a legacy one; {0, owner, epoch} when
-- the ownership moved on (nothing changed); {1, epoch, {field, value, …}, holder} when claimed: the
-- record as it was before the claim (owner and epoch are the new ones), and the instance id holding
-- the session's standalone stream (false: none), for the new owner to attach to.

-- @include session-lifetime
-- @include session-claim

if ARGV[8] ~= '' then
  local principal = redis.call('HGET', KEYS[1], 'principal')
  if principal and principal ~= ARGV[8] then
    return {-1}
  end
end
local own = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'transport')
if not own[2] or own[3] ~= 'streamable-http' then
  return {-1}
end
if own[1] ~= ARGV[6] or own[2] ~= ARGV[7] then
  return {0, own[1], own[2]}
end
local ttl = refreshSession(KEYS[1], KEYS[2], KEYS[3], ARGV[4], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ttl < 0 then
  return {-1}
end
local epoch, record, holder = claimFor(ARGV[5], own[2])
return {1, epoch, record, holder}
