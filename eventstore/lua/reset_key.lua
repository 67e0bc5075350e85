-- The committee's hotline gives a participant a new access key (the old one stops working) and records
-- it, in one step on the participant's slot. An erased participant gets none: their key is a tombstone
-- (erase.lua) and stays one.
-- KEYS: participants, access-key hashes, erased, the partition's stream.
-- A: the write record (4), participant id, new access-key hash, event, sealed new access key.
-- Answers {'reset', participant id, sealed access key} (a kept answer: the first run's key),
-- {'refused', 'unknown_participant'} or {'refused', 'erased'}.
local function one(A)
  local done = kept(A)
  if done then return done end
  if redis.call('HEXISTS', KEYS[1], A[5]) == 0 then return {'refused', 'unknown_participant'} end
  if redis.call('HEXISTS', KEYS[3], A[5]) == 1 then return {'refused', 'erased'} end
  redis.call('HSET', KEYS[2], A[5], A[6])
  redis.call('XADD', KEYS[4], '*', 'e', A[7])
  return keep(A, {'reset', A[5], A[8]})
end
