-- A registration refused for a taken identity (or answered by a kept one): drop the keys
-- register_keys.lua wrote for it. KEYS: participants, access-key hashes, birth hashes, profiles, personal
-- copies. A: participant id. Answers {'forgotten'}.
local function one(A)
  for i = 1, 5 do redis.call('HDEL', KEYS[i], A[1]) end
  return {'forgotten'}
end
