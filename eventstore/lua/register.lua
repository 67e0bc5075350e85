-- A new participant: refuse a CCCD or phone hash already taken, else claim both, keep the hashes of
-- its access key and birth date, and append.
-- KEYS: id hashes, phone hashes, participants, access-key hashes, birth hashes, stream.
-- A: id hash, phone hash, participant id, "group|unit", access-key hash, birth hash, event.
-- Answers {'registered'} or {'taken', 'id_number' | 'phone'}.
local function one(A)
  if redis.call('HEXISTS', KEYS[1], A[1]) == 1 then return {'taken', 'id_number'} end
  if redis.call('HEXISTS', KEYS[2], A[2]) == 1 then return {'taken', 'phone'} end
  redis.call('HSET', KEYS[1], A[1], A[3])
  redis.call('HSET', KEYS[2], A[2], A[3])
  redis.call('HSET', KEYS[3], A[3], A[4])
  redis.call('HSET', KEYS[4], A[3], A[5])
  redis.call('HSET', KEYS[5], A[3], A[6])
  redis.call('XADD', KEYS[6], '*', 'e', A[7])
  return {'registered'}
end
