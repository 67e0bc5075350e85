-- A participant's latest attempt while it may still be open (GET /v1/attempts/current), once its
-- access key is shown. KEYS: participants, access-key hashes, receipts, the participant's current-attempt
-- key (its attempt id, then its AttemptStarted event). ARGV: participant id, access-key hash.
-- Answers {'refused'}, {'none'} (no attempt within its time, or it was submitted) or
-- {'open', "group|unit", event}.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return {'refused'} end
local current = redis.call('GET', KEYS[4])
if not current then return {'none'} end
if redis.call('HEXISTS', KEYS[3], string.sub(current, 1, 36)) == 1 then return {'none'} end
return {'open', redis.call('HGET', KEYS[1], ARGV[1]), string.sub(current, 37)}
