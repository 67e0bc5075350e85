-- A lost access key: CCCD, phone and birth date must all name the same participant; then its key
-- hash is replaced (the old key stops working) and the event appended. Every try counts against
-- the CCCD's hourly budget, so birth dates cannot be guessed.
-- KEYS: id hashes, phone hashes, birth hashes, access-key hashes, the CCCD's recovery counter, stream.
-- A: id hash, phone hash, birth hash, new access-key hash, tries per hour, event (it names the
-- CCCD's hash, which the participant's registration event carries too).
-- Answers {'reissued', participant id} or {'refused', 'rate_limited' | 'invalid_credentials', ttl}.
local function one(A)
  local tries = redis.call('INCR', KEYS[5])
  if tries == 1 then redis.call('EXPIRE', KEYS[5], 3600) end
  if tries > tonumber(A[5]) then return {'refused', 'rate_limited', redis.call('TTL', KEYS[5])} end
  local pid = redis.call('HGET', KEYS[1], A[1])
  if not pid or redis.call('HGET', KEYS[2], A[2]) ~= pid or redis.call('HGET', KEYS[3], pid) ~= A[3] then
    return {'refused', 'invalid_credentials', 0}
  end
  redis.call('HSET', KEYS[4], pid, A[4])
  redis.call('XADD', KEYS[6], '*', 'e', A[6])
  return {'reissued', pid}
end
