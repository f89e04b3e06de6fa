-- Appends messages to one SSE stream's event log with consecutive sequence numbers, atomically, on
-- behalf of the session's owner (fenced), and records the stream in the session's set of logs.
-- A log's first append that also ends it (ARGV[8] = 1) writes a sealed log, a list; any other
-- append writes the stream shape (event-log-shape.lua).
--
-- KEYS[1]  event log      (RedisKeys.events)
-- KEYS[2]  session hash   (RedisKeys.session)
-- KEYS[3]  set of logs    (RedisKeys.logs)
-- ARGV[1]  maxEvents (approximate cap: MAXLEN ~; a sealed log is written only within it)
-- ARGV[2]  ttlMs of the log key (shorter when this append ends the stream)
-- ARGV[3]  ttlMs of the set of logs (the session's: it must outlive every log it names)
-- ARGV[4]  fence: owner instance id, or '' for an unfenced append
-- ARGV[5]  fence: epoch
-- ARGV[6]  stream id (the member of the set of logs)
-- ARGV[7]  the sequence number the writer saw last, or -1: append whatever the log holds. A retry
--          of an append whose reply was lost finds its own messages there and gets their numbers
--          back instead of appending them twice.
-- ARGV[8]  1 when the last message is the end marker (the stream ends with this append), else 0
-- ARGV[9…] the serialized messages, in order
--
-- Returns the sequence numbers of the appended messages, or {-1} when the session is gone, {-2}
-- when the fence does not hold and {-3} when the log moved on otherwise (nothing appended).

-- @include event-log-shape
-- @include fence

local FIRST = 9
-- Messages pushed to a list per call: Lua's unpack has a stack limit.
local CHUNK = 500

local fence = checkFence(KEYS[2], ARGV[4], ARGV[5])
if fence ~= 0 then
  return {fence}
end
local kind = logKind(KEYS[1])
local seq = lastSeq(KEYS[1], kind)
local seqs = {}
local expected = tonumber(ARGV[7])
local count = #ARGV - FIRST + 1
if expected >= 0 and seq ~= expected then
  if seq ~= expected + count then
    return {-3}
  end
  for i = 1, count do
    seqs[i] = expected + i
  end
  return seqs
end
if kind == 'none' and ARGV[8] == '1' and count <= tonumber(ARGV[1]) then
  for i = FIRST, #ARGV, CHUNK do
    redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + CHUNK - 1, #ARGV)))
  end
  for i = 1, count do
    seqs[i] = i
  end
else
  if kind == 'list' then
    local sealed = redis.call('LRANGE', KEYS[1], 0, -1)
    redis.call('DEL', KEYS[1])
    for i = 1, #sealed do
      redis.call('XADD', KEYS[1], string.format('%d-0', i), 'd', sealed[i])
    end
  end
  for i = FIRST, #ARGV do
    seq = seq + 1
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-0', seq), 'd', ARGV[i])
    seqs[#seqs + 1] = seq
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[6])
-- The set outlives every log it names: each log's TTL is refreshed no later than the set's, and no
-- log's TTL is longer.
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return seqs
