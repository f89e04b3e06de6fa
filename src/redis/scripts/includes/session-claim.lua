-- Included by the claiming scripts (claim-session, touch-or-claim): the one place a claim is
-- written, on their KEYS layout (KEYS[1] the session hash, KEYS[4] the standalone stream's holder
-- record, same slot). The caller has checked the ownership it expected, at `epoch`.

-- Makes `claimant` the owner at `epoch` + 1. Returns the new epoch, the record as it was before the
-- claim ({field, value, …}) and the instance id holding the session's standalone stream (false:
-- none), for the new owner to attach to. The release reason is for this claimant only: it is in
-- the record returned, and removed from the hash.
local function claimFor(claimant, epoch)
  local claimed = tonumber(epoch) + 1
  local record = redis.call('HGETALL', KEYS[1])
  redis.call('HSET', KEYS[1], 'owner', claimant, 'epoch', claimed)
  redis.call('HDEL', KEYS[1], 'rel')
  return claimed, record, redis.call('HGET', KEYS[4], 'instanceId')
end
