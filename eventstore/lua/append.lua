-- Entries appended to one stream (admin events, bulk simulation), as ingest's own writes are: in a
-- shared batch whose reply waits for the fsync. KEYS: the stream. A: the write record (4), the entries.
-- Answers the last id.
local function one(A)
  local done = kept(A)
  if done then return done end
  local id = false
  for i = 5, #A do id = redis.call('XADD', KEYS[1], '*', 'e', A[i]) end
  return keep(A, id)
end
