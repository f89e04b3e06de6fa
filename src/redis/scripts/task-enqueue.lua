-- Appends a message to a task's queue (RedisTaskMessageQueue) unless the queue is full.
--
-- KEYS[1]  task queue (TaskKeys.queue)
-- KEYS[2]  task hash  (TaskKeys.task): same hash tag; the queue expires with it
-- ARGV[1]  the message as JSON
-- ARGV[2]  maxSize: the queue may hold at most this many messages; '' for no limit
-- ARGV[3]  TTL ms of a queue whose task is not in this store
--
-- Returns {1, length} when appended, or {0, length} when the queue is full (nothing written).

local length = redis.call('LLEN', KEYS[1])
if ARGV[2] ~= '' and length >= tonumber(ARGV[2]) then
  return {0, length}
end
redis.call('RPUSH', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then
  ttl = tonumber(ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, length + 1}
