-- What ingest holds about one participant (GET /v1/participants/me), once its access key is shown.
-- KEYS: participants, access-key hashes, profiles, receipts, personal copies, then the attempt ids of each
-- period. ARGV: participant id, access-key hash.
-- Answers {'refused'} or {'found', "group|unit", sealed profile, personal copy ('' : registered before data
-- keys), then per period: its attempt ids (one string), then the receipts of those attempts (false where none)}.
local pid = ARGV[1]
if redis.call('HGET', KEYS[2], pid) ~= ARGV[2] then return {'refused'} end
local out = {'found', redis.call('HGET', KEYS[1], pid), redis.call('HGET', KEYS[3], pid) or '',
             redis.call('HGET', KEYS[5], pid) or ''}
for k = 6, #KEYS do
  local ids = redis.call('HGET', KEYS[k], pid) or ''
  out[#out + 1] = ids
  for i = 1, #ids, 36 do
    out[#out + 1] = redis.call('HGET', KEYS[4], string.sub(ids, i, i + 35)) or false
  end
end
return out
