-- Gives up the ownership of a session (owner '', epoch unchanged) if the caller still holds it.
--
-- KEYS[1]  session hash   (RedisKeys.session)
-- ARGV[1]  owner instance id
-- ARGV[2]  its epoch
-- ARGV[3]  why ('handoff' or 'eviction': the next owner is told)
--
-- Returns 1 when released, 0 when the caller did not own the session (any more) or it is gone.

-- @include fence

if checkFence(KEYS[1], ARGV[1], ARGV[2]) ~= 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'owner', '', 'rel', ARGV[3])
return 1
