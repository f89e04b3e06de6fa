-- Enters a task in one listing index of RedisTaskStore (a sorted set by creation time) and prunes
-- the entries of tasks too old to be alive still.
--
-- KEYS[1]  index (TaskKeys.sessionTasks or TaskKeys.allTasks)
-- ARGV[1]  score: the creation time in ms (a fraction orders the tasks one store made in one ms)
-- ARGV[2]  task id (the member)
-- ARGV[3]  keepMs: the longest the task can live from now (twice its TTL: the terminal status
--          restarts it); the index lives at least as long
-- ARGV[4]  entries scored below this are pruned (now - twice the fleet's maximum TTL: no task
--          created before it can be alive)
--
-- Returns the number of entries in the index.

redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
-- PTTL is -1 for a key without a TTL: every index gets one here.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return redis.call('ZCARD', KEYS[1])
