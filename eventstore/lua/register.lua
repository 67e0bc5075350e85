-- A new participant: refuse a CCCD or phone hash already taken, else claim both and append.
-- KEYS: id hashes, phone hashes, participants, stream. A: id hash, phone hash, participant id,
-- "group|unit", event. Answers {'registered'} or {'taken', 'id_number' | 'phone'}.
local function one(A)
  if redis.call('HEXISTS', KEYS[1], A[1]) == 1 then return {'taken', 'id_number'} end
  if redis.call('HEXISTS', KEYS[2], A[2]) == 1 then return {'taken', 'phone'} end
  redis.call('HSET', KEYS[1], A[1], A[3])
  redis.call('HSET', KEYS[2], A[2], A[3])
  redis.call('HSET', KEYS[3], A[3], A[4])
  redis.call('XADD', KEYS[4], '*', 'e', A[5])
  return {'registered'}
end
