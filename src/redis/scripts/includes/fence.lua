-- Included by the scripts that write on behalf of a session's owner: the one place that applies the
-- fencing rule. A write fenced with (owner, epoch) goes through only while the session hash still
-- names that owner at that epoch; an owner that was replaced (it froze and a successor claimed the
-- session) is refused, learns it, and steps down.

-- Returns 0 when the write may go ahead (or is not fenced: owner ''), -1 when the session is gone,
-- -2 when another owner or epoch holds it.
local function checkFence(sessionKey, owner, epoch)
  if owner == '' then
    return 0
  end
  local f = redis.call('HMGET', sessionKey, 'owner', 'epoch')
  if not f[2] then
    return -1
  end
  if f[1] ~= owner or f[2] ~= epoch then
    return -2
  end
  return 0
end
