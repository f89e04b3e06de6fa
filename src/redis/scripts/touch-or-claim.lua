-- Refreshes a session's sliding TTL, as refresh-session does, and when the session has no owner
-- (released: owner '') and speaks Streamable HTTP, makes the caller its owner in the same step (the
-- claim of claim-session with the expected ownership "nobody, at the current epoch"). The first
-- request of a released session costs one round trip instead of a refresh and then a claim. The
-- holder of the session's standalone stream is read in the same step, for the new owner to attach to.
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- KEYS[3]  session index of the shard (RedisKeys.sessionIndexOf)
-- KEYS[4]  holder hash of the standalone stream (RedisKeys.holder; same slot)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  session id (the index member)
-- ARGV[5]  principal the session must belong to, or '' for any
-- ARGV[6]  claimant instance id
--
-- Returns {-1} when the session is gone, {-3} when it belongs to another principal (nothing
-- refreshed); {ttl, owner, epoch, transport} when it has an owner (refreshed only); {ttl, claimant,
-- epoch, transport, {field, value, …}, holder} when claimed: the record as it was before the claim
-- (owner and epoch are the new ones), and the standalone stream's holder instance id (false: none).

-- @include session-lifetime
-- @include session-claim

local ttl, f = touchSession(ARGV[5])
if ttl < 0 then
  return {ttl}
end
if f[3] ~= '' or not f[4] or f[5] ~= 'streamable-http' then
  return {ttl, f[3] or '', f[4] or '0', f[5] or ''}
end
local epoch, record, holder = claimFor(ARGV[6], f[4])
return {ttl, ARGV[6], epoch, f[5], record, holder}
