-- A lost access key, second step, in the participant's partition: the birth date must match; then
-- its key hash is replaced (the old key stops working) and the event appended.
-- KEYS: birth hashes, access-key hashes, the partition's stream.
-- A: the write record (4), participant id, birth hash, new access-key hash, event, sealed new access key.
-- Answers {'reissued', participant id, sealed access key} (a kept answer: the first run's key),
-- {'refused', 'invalid_credentials', 0} or {'mismatch'}.
local function one(A)
  if redis.call('HGET', KEYS[1], A[5]) ~= A[6] then return {'refused', 'invalid_credentials', 0} end
  local done = kept(A)
  if done then return done end
  redis.call('HSET', KEYS[2], A[5], A[7])
  redis.call('XADD', KEYS[3], '*', 'e', A[8])
  return keep(A, {'reissued', A[5], A[9]})
end
