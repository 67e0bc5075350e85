-- An erasure (DESIGN §10) in the participants' partition, in one step: each one's personal copy (its
-- wrapped data key, without which what the event record holds sealed is unreadable, and its plain values),
-- profile and birth-date hash deleted; its access key's hash kept only as a tombstone, so the old key stops
-- working everywhere (shown again here, it answers the first erasure); the time recorded; the event appended.
-- A participant's own request shows its access key's hash; the committee's shows none ('') and may name many
-- participants at once (the retention erasure).
-- KEYS: participants, access-key hashes, birth hashes, profiles, personal copies, erased, the partition's stream.
-- A: the write record (4, see prelude.lua), access-key hash or '', erased at (ms), the event, '1' to refuse
-- a participant this partition does not know (one named) or '0', then the participant ids.
-- Answers {'erased', erased at, how many newly erased} (one already erased, or a repeat answered from the
-- record: 0, nothing appended), {'refused', 'invalid_credentials' | 'unknown_participant'} or {'mismatch'}.
local function one(A)
  if A[5] ~= '' then
    local held = redis.call('HGET', KEYS[2], A[9])
    if not held or (held ~= A[5] and held ~= 'erased:' .. A[5]) then return {'refused', 'invalid_credentials'} end
  end
  local done = kept(A)  -- after the credential: a key replays nothing to another caller
  if done then return done end
  if #A == 9 then
    if A[8] == '1' and redis.call('HEXISTS', KEYS[1], A[9]) == 0 then return {'refused', 'unknown_participant'} end
    local first = redis.call('HGET', KEYS[6], A[9])
    if first then return keep(A, {'erased', first, 0}) end
  end
  local n = 0
  for i = 9, #A do
    local pid = A[i]
    if redis.call('HSETNX', KEYS[6], pid, A[6]) == 1 then
      n = n + 1
      local held = redis.call('HGET', KEYS[2], pid)
      if held then redis.call('HSET', KEYS[2], pid, 'erased:' .. held) end
      redis.call('HDEL', KEYS[3], pid)
      redis.call('HDEL', KEYS[4], pid)
      redis.call('HDEL', KEYS[5], pid)
    end
  end
  if n > 0 then redis.call('XADD', KEYS[7], '*', 'e', A[7]) end
  keep(A, {'erased', A[6], 0})  -- a repeat answers the time, and that it erased nothing more
  return {'erased', A[6], n}
end
