-- Appends messages to one SSE stream's event log with consecutive ids <seq>-0, atomically.
--
-- KEYS[1]  event stream   (RedisKeys.events)
-- ARGV[1]  maxEvents (approximate cap: MAXLEN ~)
-- ARGV[2]  ttlMs of the stream key
-- ARGV[3…] the serialized messages, in order
--
-- Returns the sequence numbers of the appended messages.

-- @include stream-last-seq

local seq = lastSeq(KEYS[1])
local seqs = {}
for i = 3, #ARGV do
  seq = seq + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-0', seq), 'd', ARGV[i])
  seqs[#seqs + 1] = seq
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return seqs
