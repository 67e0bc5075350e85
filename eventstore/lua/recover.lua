-- A lost access key, first step, in the contest's slot: count the try against the CCCD's hourly
-- budget (so birth dates cannot be guessed), then CCCD and phone must name the same participant.
-- KEYS: id hashes, phone hashes, the CCCD's recovery counter.
-- A: the write record (4), id hash, phone hash, tries per hour.
-- Answers {'found', participant id}, {'refused', 'rate_limited' | 'invalid_credentials', ttl} or {'mismatch'}.
local function one(A)
  local done = kept(A)
  if done then return done end
  local tries = redis.call('INCR', KEYS[3])
  if tries == 1 then redis.call('EXPIRE', KEYS[3], 3600) end
  if tries > tonumber(A[7]) then return keep(A, {'refused', 'rate_limited', redis.call('TTL', KEYS[3])}, true) end
  local pid = redis.call('HGET', KEYS[1], A[5])
  if not pid or redis.call('HGET', KEYS[2], A[6]) ~= pid then
    return keep(A, {'refused', 'invalid_credentials', 0}, true)
  end
  return keep(A, {'found', pid})
end
