-- Records which instance holds a live stream, replacing any previous holder, in the shard's index.
--
-- KEYS[1]  holder hash    (RedisKeys.holder)
-- KEYS[2]  stream index of the shard (RedisKeys.streamIndexOf)
-- KEYS[3]  session hash   (RedisKeys.session): its owner is read in the same step
-- ARGV[1]  heartbeatTtlMs
-- ARGV[2]  instanceId of the new holder
-- ARGV[3]  now, ms since the epoch
-- ARGV[4]  index member `<sessionId> <streamId>`
-- ARGV[5…] field, value, field, value, … of the rest of the record
--
-- Returns {previous, owner}: the previous holder's instance id when another instance held the
-- stream, else ''; and the session's owner now ('' when it has none or is gone). A session claim after
-- this script reads the new record (session-claim.lua reads the standalone holder), and one before it
-- is the owner returned here, so the holder can tell the owner without a window in between.

local previous = redis.call('HGET', KEYS[1], 'instanceId')
-- DEL first: a field the new record leaves out must not survive from the old one.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'instanceId', ARGV[2], unpack(ARGV, 5))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[1]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local owner = redis.call('HGET', KEYS[3], 'owner') or ''
if previous and previous ~= ARGV[2] then
  return {previous, owner}
end
return {'', owner}
