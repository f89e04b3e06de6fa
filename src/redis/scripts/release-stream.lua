-- Removes a stream record if the calling instance still holds it.
--
-- KEYS[1]  holder hash    (RedisKeys.holder)
-- ARGV[1]  instanceId of the caller
--
-- Returns 0 when the record is gone (removed now or before), else the remaining TTL in ms of the
-- record another instance holds (so the caller can put it back into the stream index).

if redis.call('HGET', KEYS[1], 'instanceId') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 0
end
return math.max(redis.call('PTTL', KEYS[1]), 0)
