-- A new participant's identities, in the contest's slot: refuse a CCCD or phone hash already taken,
-- else claim both and append the registration. Its partition's keys were written before (see
-- register_keys.lua): a crash in between leaves only keys nobody can reach, never a half claim.
-- KEYS: id hashes, phone hashes, the contest's stream.
-- A: the write record (4, see prelude.lua), id hash, phone hash, participant id, event, sealed access key.
-- Answers {'registered', participant id, sealed access key} (a kept answer names the first run's
-- participant), {'taken', 'id_number' | 'phone'} or {'mismatch'}.
local function one(A)
  local done = kept(A)
  if done then return done end
  if redis.call('HEXISTS', KEYS[1], A[5]) == 1 then return {'taken', 'id_number'} end
  if redis.call('HEXISTS', KEYS[2], A[6]) == 1 then return {'taken', 'phone'} end
  redis.call('HSET', KEYS[1], A[5], A[7])
  redis.call('HSET', KEYS[2], A[6], A[7])
  redis.call('XADD', KEYS[3], '*', 'e', A[8])
  return keep(A, {'registered', A[7], A[9]})
end
