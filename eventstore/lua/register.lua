-- A new participant's identities, in the contest's slot: refuse a CCCD or phone hash already taken,
-- else claim both and append the registration. Its partition's keys were written before (see
-- register_keys.lua): a crash in between leaves only keys nobody can reach, never a half claim.
-- KEYS: id hashes, phone hashes, the contest's stream. A: id hash, phone hash, participant id, event.
-- Answers {'registered'} or {'taken', 'id_number' | 'phone'}.
local function one(A)
  if redis.call('HEXISTS', KEYS[1], A[1]) == 1 then return {'taken', 'id_number'} end
  if redis.call('HEXISTS', KEYS[2], A[2]) == 1 then return {'taken', 'phone'} end
  redis.call('HSET', KEYS[1], A[1], A[3])
  redis.call('HSET', KEYS[2], A[2], A[3])
  redis.call('XADD', KEYS[3], '*', 'e', A[4])
  return {'registered'}
end
