-- Creates a task record (MCP tasks, RedisTaskStore) unless its id is taken.
--
-- KEYS[1]  task hash (TaskKeys.task)
-- ARGV[1]  ttl ms: the record expires this long after its creation (the terminal status resets it)
-- ARGV[2…] field, value, field, value, … of the record
--
-- Returns 1 when created, 0 when the id is taken (nothing written).

if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
