-- A registration refused for a taken identity: drop the keys register_keys.lua wrote for it.
-- KEYS: participants, access-key hashes, birth hashes. A: participant id. Answers {'forgotten'}.
local function one(A)
  redis.call('HDEL', KEYS[1], A[1])
  redis.call('HDEL', KEYS[2], A[1])
  redis.call('HDEL', KEYS[3], A[1])
  return {'forgotten'}
end
