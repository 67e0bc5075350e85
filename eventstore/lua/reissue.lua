-- A lost access key, second step, in the participant's partition: the birth date must match; then
-- its key hash is replaced (the old key stops working) and the event appended.
-- KEYS: birth hashes, access-key hashes, the partition's stream.
-- A: participant id, birth hash, new access-key hash, event.
-- Answers {'reissued', participant id} or {'refused', 'invalid_credentials', 0}.
local function one(A)
  if redis.call('HGET', KEYS[1], A[1]) ~= A[2] then return {'refused', 'invalid_credentials', 0} end
  redis.call('HSET', KEYS[2], A[1], A[3])
  redis.call('XADD', KEYS[3], '*', 'e', A[4])
  return {'reissued', A[1]}
end
