-- A new attempt: the participant must exist, show its access key, not be disqualified and be under
-- the limit.
-- KEYS: participants, access-key hashes, disqualified, attempts of the period, stream.
-- A: participant id, access-key hash, limit, then (group, event) pairs: the caller drew questions
-- for every group, the script appends the one for the participant's group, so this stays one round
-- trip. Answers {'started', "group|unit"} or {'refused', reason}.
local function one(A)
  local info = redis.call('HGET', KEYS[1], A[1])
  if not info then return {'refused', 'unknown_participant'} end
  if redis.call('HGET', KEYS[2], A[1]) ~= A[2] then return {'refused', 'invalid_credentials'} end
  if redis.call('SISMEMBER', KEYS[3], A[1]) == 1 then return {'refused', 'disqualified'} end
  local used = tonumber(redis.call('HGET', KEYS[4], A[1]) or '0')
  if used >= tonumber(A[3]) then return {'refused', 'attempt_limit'} end
  local group = string.sub(info, 1, string.find(info, '|', 1, true) - 1)
  for i = 4, #A, 2 do
    if A[i] == group then
      redis.call('HINCRBY', KEYS[4], A[1], 1)
      redis.call('XADD', KEYS[5], '*', 'e', A[i + 1])
      return {'started', info}
    end
  end
  return {'refused', 'unknown_group'}
end
