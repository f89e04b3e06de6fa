-- Records which instance holds a live stream, replacing any previous holder.
--
-- KEYS[1]  holder hash    (RedisKeys.holder)
-- ARGV[1]  heartbeatTtlMs
-- ARGV[2]  instanceId of the new holder
-- ARGV[3…] field, value, field, value, … of the rest of the record
--
-- Returns the previous holder's instance id when another instance held the stream, else nil.

local previous = redis.call('HGET', KEYS[1], 'instanceId')
-- DEL first: a field the new record leaves out must not survive from the old one.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'instanceId', ARGV[2], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if previous and previous ~= ARGV[2] then
  return previous
end
return false
