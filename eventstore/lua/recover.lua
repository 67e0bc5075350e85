-- A lost access key, first step, in the contest's slot: count the try against the CCCD's hourly
-- budget (so birth dates cannot be guessed), then CCCD and phone must name the same participant.
-- KEYS: id hashes, phone hashes, the CCCD's recovery counter. A: id hash, phone hash, tries per hour.
-- Answers {'found', participant id} or {'refused', 'rate_limited' | 'invalid_credentials', ttl}.
local function one(A)
  local tries = redis.call('INCR', KEYS[3])
  if tries == 1 then redis.call('EXPIRE', KEYS[3], 3600) end
  if tries > tonumber(A[3]) then return {'refused', 'rate_limited', redis.call('TTL', KEYS[3])} end
  local pid = redis.call('HGET', KEYS[1], A[1])
  if not pid or redis.call('HGET', KEYS[2], A[2]) ~= pid then return {'refused', 'invalid_credentials', 0} end
  return {'found', pid}
end
