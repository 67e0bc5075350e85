-- A new participant's keys in its partition, written before its identities are claimed: until then
-- nobody knows its id (a fresh UUIDv7), so these keys are unreachable. Running it twice writes the same.
-- KEYS: participants, access-key hashes, birth hashes, profiles, personal copies.
-- A: participant id, "group|unit", access-key hash, birth hash, sealed profile, personal copy. Answers {'kept'}.
local function one(A)
  redis.call('HSET', KEYS[1], A[1], A[2])
  redis.call('HSET', KEYS[2], A[1], A[3])
  redis.call('HSET', KEYS[3], A[1], A[4])
  redis.call('HSET', KEYS[4], A[1], A[5])
  redis.call('HSET', KEYS[5], A[1], A[6])
  return {'kept'}
end
