-- Refreshes a session's sliding TTL (SessionStore.touch), optionally returning the record (load).
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- KEYS[2]  data hash      (RedisKeys.data)
-- KEYS[3]  session index of the shard (RedisKeys.sessionIndexOf)
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  idleMs
-- ARGV[3]  maxLifetimeMs
-- ARGV[4]  session id (the index member)
-- ARGV[5]  '1' to return the record, '0' not to
-- ARGV[6]  principal the session must belong to, or '' for any
--
-- Returns {ttl, owner, epoch, transport} or {ttl, owner, epoch, transport, {field, value, …}}; ttl
-- is the new TTL in ms, or {-1} when the session is gone; {-3} when it belongs to another principal
-- (nothing refreshed).

-- @include session-lifetime

local ttl, f = touchSession(ARGV[6])
if ttl < 0 then
  return {ttl}
end
if ARGV[5] ~= '1' then
  return {ttl, f[3] or '', f[4] or '0', f[5] or ''}
end
return {ttl, f[3] or '', f[4] or '0', f[5] or '', redis.call('HGETALL', KEYS[1])}
