-- One request of a client address in the current minute: count it, and say whether it is within
-- the limit. KEYS: the address's counter for this minute. A: the write record (4), the limit.
-- Answers {'allowed'} or {'limited', seconds until the minute ends}.
local function one(A)
  local done = kept(A)
  if done then return done end
  local n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('EXPIRE', KEYS[1], 60) end
  if n > tonumber(A[5]) then return keep(A, {'limited', redis.call('TTL', KEYS[1])}, true) end
  return keep(A, {'allowed'})
end
