-- A submission: the first one of an attempt wins; a repeat gets the original receipt whatever it
-- says (checked before any time rule) — our own receipt when this is the same write run again (a
-- resent batch), so it answers 'accepted' as the first run did; otherwise the caller's pre-computed
-- refusal; a write reaching the store later than its stamp allows is refused ('late', nothing written:
-- DESIGN §3, the close's barrier is exact); else store the receipt and append.
-- KEYS: receipts, stream. A: attempt id, refusal ('' when none), receipt, event, the store time by which
-- it must land (ms).
-- Answers {'accepted', receipt}, {'repeated', original receipt}, {'refused', reason} or {'late', ''}.
local function one(A)
  local prior = redis.call('HGET', KEYS[1], A[1])
  if prior then
    if prior == A[3] then return {'accepted', prior} end
    return {'repeated', prior}
  end
  if A[2] ~= '' then return {'refused', A[2]} end
  if store_ms() > tonumber(A[5]) then return {'late', ''} end
  redis.call('HSET', KEYS[1], A[1], A[3])
  redis.call('XADD', KEYS[2], '*', 'e', A[4])
  return {'accepted', A[3]}
end
