-- Changes the status of a task of RedisTaskStore, atomically with the checks the change needs.
--
-- KEYS[1]  task hash  (TaskKeys.task)
-- KEYS[2]  task queue (TaskKeys.queue): same hash tag, its TTL follows the task's
-- ARGV[1]  now, ms since the epoch (the caller's clock; lastUpdatedAt never goes back)
-- ARGV[2]  kind: 'status' (updateTaskStatus), 'result' (storeTaskResult) or 'lost' (the instance
--          running the task is not alive: fail it unless it has ended already)
-- ARGV[3]  '1' when the caller passes a session id (ARGV[4]), '0' when it does not
-- ARGV[4]  the caller's session id: a task created in another session is not found
-- ARGV[5]  the new status
-- ARGV[6]  status message; '' keeps the current one
-- ARGV[7]  the result as JSON (kind 'result')
--
-- Returns {'missing'} (no such task for this caller), {'terminal', status} (the task has ended:
-- nothing written), {'unchanged', fields} ('lost' on a task that has ended) or {'ok', fields}, where
-- fields are status, ttl, createdAt, updatedAt, pollInterval, statusMessage, session, instance.

local function fields()
  return redis.call('HMGET', KEYS[1], 'status', 'ttl', 'createdAt', 'updatedAt', 'pollInterval',
    'statusMessage', 'session', 'instance')
end

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'missing'}
end
if ARGV[3] == '1' then
  local owner = redis.call('HGET', KEYS[1], 'session')
  if owner and owner ~= ARGV[4] then
    return {'missing'}
  end
end
local terminal = {completed = true, failed = true, cancelled = true}
if terminal[status] then
  if ARGV[2] == 'lost' then
    return {'unchanged', fields()}
  end
  return {'terminal', status}
end

local updated = ARGV[1]
local previous = redis.call('HGET', KEYS[1], 'updatedAt')
if previous and tonumber(previous) > tonumber(updated) then
  updated = previous
end
redis.call('HSET', KEYS[1], 'status', ARGV[5], 'updatedAt', updated)
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'statusMessage', ARGV[6])
end
if ARGV[2] == 'result' then
  redis.call('HSET', KEYS[1], 'result', ARGV[7])
end

-- A result, or a terminal status, restarts the task's TTL: it is kept that long after it ended.
if ARGV[2] ~= 'status' or terminal[ARGV[5]] then
  local ttl = redis.call('HGET', KEYS[1], 'ttl')
  redis.call('PEXPIRE', KEYS[1], ttl)
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
return {'ok', fields()}
