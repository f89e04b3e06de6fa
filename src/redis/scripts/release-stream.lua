-- Removes a stream record, and its index entry, if the calling instance still holds it.
--
-- KEYS[1]  holder hash    (RedisKeys.holder)
-- KEYS[2]  stream index of the shard (RedisKeys.streamIndexOf)
-- ARGV[1]  instanceId of the caller
-- ARGV[2]  index member `<sessionId> <streamId>`
--
-- Returns 1 when removed, 0 when another instance holds it (or nobody does).

if redis.call('HGET', KEYS[1], 'instanceId') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 0
