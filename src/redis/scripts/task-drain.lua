-- Removes and returns every message of a task's queue (RedisTaskMessageQueue.dequeueAll).
--
-- KEYS[1]  task queue (TaskKeys.queue)
--
-- Returns the messages, oldest first.

local messages = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return messages
