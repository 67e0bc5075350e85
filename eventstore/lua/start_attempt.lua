-- A new attempt: the participant must exist, show its access key, not be disqualified, be under the
-- limit, and the start must reach the store within the settle margin of its stamp (DESIGN §3).
-- KEYS: participants, access-key hashes, disqualified, attempt ids of the period, stream.
-- A: the write record (4), participant id, access-key hash, limit, the store time by which it must land
-- (ms), attempt id, the participant's current-attempt key (which keeps the attempt id and event) and its
-- lifetime (s), then (group, event)
-- pairs: the caller drew questions for every group, the script appends the one for the participant's
-- group, so this stays one round trip. The period's attempt ids are kept per participant as one string
-- of 36-character ids (their count is the attempts started).
-- Answers {'started', "group|unit", event} (a kept answer: the first run's attempt), {'refused', reason},
-- {'late'} (nothing written) or {'mismatch'}.
local function one(A)
  local pid = A[5]
  local info = redis.call('HGET', KEYS[1], pid)
  if not info then return {'refused', 'unknown_participant'} end
  if redis.call('HGET', KEYS[2], pid) ~= A[6] then return {'refused', 'invalid_credentials'} end
  local done = kept(A)  -- after the credential: a key replays nothing to another caller
  if done then return done end
  if redis.call('SISMEMBER', KEYS[3], pid) == 1 then return {'refused', 'disqualified'} end
  local started = redis.call('HGET', KEYS[4], pid) or ''
  if #started / 36 >= tonumber(A[7]) then return {'refused', 'attempt_limit'} end
  if store_ms() > tonumber(A[8]) then return {'late'} end
  local group = string.sub(info, 1, string.find(info, '|', 1, true) - 1)
  for i = 12, #A, 2 do
    if A[i] == group then
      redis.call('HSET', KEYS[4], pid, started .. A[9])
      redis.call('XADD', KEYS[5], '*', 'e', A[i + 1])
      redis.call('SET', A[10], A[9] .. A[i + 1], 'EX', A[11])
      return keep(A, {'started', info, A[i + 1]})
    end
  end
  return {'refused', 'unknown_group'}
end
