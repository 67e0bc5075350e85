-- A submission: the first one of an attempt wins; a repeat gets the original receipt whatever it
-- says (checked before any time rule); otherwise the caller's pre-computed refusal, or append.
-- KEYS: receipts, stream. A: attempt id, refusal ('' when none), receipt, event.
-- Answers {'accepted', receipt}, {'repeated', original receipt} or {'refused', reason}.
local function one(A)
  local prior = redis.call('HGET', KEYS[1], A[1])
  if prior then return {'repeated', prior} end
  if A[2] ~= '' then return {'refused', A[2]} end
  redis.call('HSET', KEYS[1], A[1], A[3])
  redis.call('XADD', KEYS[2], '*', 'e', A[4])
  return {'accepted', A[3]}
end
