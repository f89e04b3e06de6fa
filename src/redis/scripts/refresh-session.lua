-- Refreshes a session's sliding TTL (SessionStore.touch), optionally returning the record (load).
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  '1' to return the record, '0' not to
-- ARGV[5]  principal the session must belong to, or '' for any
--
-- Returns {ttl, owner, epoch, transport} or {ttl, owner, epoch, transport, {field, value, …}}; ttl is
-- the new TTL in ms, or
-- {-1} when the session is gone; {-3, pttl} when it belongs to another principal (nothing refreshed;
-- pttl lets the index be corrected).

-- @include session-lifetime

if ARGV[5] and ARGV[5] ~= '' then
  local principal = redis.call('HGET', KEYS[1], 'principal')
  if principal and principal ~= ARGV[5] then
    return {-3, redis.call('PTTL', KEYS[1])}
  end
end
local ttl = refreshSession(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if ttl < 0 then
  return {ttl}
end
local own = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'transport')
if ARGV[4] ~= '1' then
  return {ttl, own[1] or '', own[2] or '0', own[3] or ''}
end
return {ttl, own[1] or '', own[2] or '0', own[3] or '', redis.call('HGETALL', KEYS[1])}
