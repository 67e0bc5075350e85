-- One request of a client address in the current minute: count it, and say whether it is within
-- the limit. KEYS: the address's counter for this minute. A: the limit.
-- Answers {'allowed'} or {'limited', seconds until the minute ends}.
local function one(A)
  local n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('EXPIRE', KEYS[1], 60) end
  if n > tonumber(A[1]) then return {'limited', redis.call('TTL', KEYS[1])} end
  return {'allowed'}
end
