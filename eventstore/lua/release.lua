-- Identity claims released (`cchc forget --expired`: an erased person's once the contest's last period is
-- closed, everyone's with the retention erasure), in the contest's slot. Each (1 for CCCD or 2 for phone,
-- keyed hash, participant id) triple drops its claim only while it still names that participant: a claim
-- released and taken again by a new registration is the new one's. Running it twice changes nothing more.
-- KEYS: id hashes, phone hashes. ARGV: the triples. Answers how many claims went.
local n = 0
for i = 1, #ARGV, 3 do
  local key = KEYS[tonumber(ARGV[i])]
  if redis.call('HGET', key, ARGV[i + 1]) == ARGV[i + 2] then
    redis.call('HDEL', key, ARGV[i + 1])
    n = n + 1
  end
end
return n
