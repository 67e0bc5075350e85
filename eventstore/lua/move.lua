-- The committee moves a participant to another unit (DESIGN §3 "Corrections"): the unit attempts carry
-- from now on, and the event, in one step on the participant's slot.
-- KEYS: participants, the partition's stream. A: the write record (4), participant id, new unit code, event.
-- Answers {'moved', the former "group|unit"} or {'refused', 'unknown_participant'}.
local function one(A)
  local done = kept(A)
  if done then return done end
  local info = redis.call('HGET', KEYS[1], A[5])
  if not info then return {'refused', 'unknown_participant'} end
  local bar = string.find(info, '|', 1, true)
  local group = bar and string.sub(info, 1, bar - 1) or info
  redis.call('HSET', KEYS[1], A[5], group .. '|' .. A[6])
  redis.call('XADD', KEYS[2], '*', 'e', A[7])
  return keep(A, {'moved', info})
end
