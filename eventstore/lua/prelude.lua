-- Prepended to every script: write records and the store's clock.
--
-- A write record (DESIGN §5.7) keeps a write's reply under an id of its own for a while, so that running
-- the write again — a batch resent after its reply was lost, a script reloaded after NOSCRIPT, a client's
-- retry with the same Idempotency-Key — answers the first run's reply and changes nothing. A script that
-- keeps records takes the record as its item's first four arguments: the record's key (in the script's
-- slot), how many seconds it is kept, the digest of the request body it answers, and '1' when refusals that
-- counted something (a rate limit's request, a recovery's try) are kept too (our own request ids: a resend
-- must not count twice) or '0' (a client's Idempotency-Key: a refusal is not kept, so a retry after one is a
-- new try). A refusal that wrote nothing is never kept: running it again answers the same.

-- The reply kept under the record, {'mismatch'} when the record answers another body, else false.
local function kept(A)
  local v = redis.call('GET', A[1])
  if not v then return false end
  local record = cmsgpack.unpack(v)
  if record[1] ~= A[3] then return {'mismatch'} end
  return record[2]
end

-- Keep `reply` under the record (a refusal only when the record says so) and answer it.
local function keep(A, reply, refused)
  if not refused or A[4] == '1' then
    redis.call('SET', A[1], cmsgpack.pack({A[3], reply}), 'EX', A[2])
  end
  return reply
end

-- The store's time in milliseconds (DESIGN §3 "one clock": every stamp is corrected to it).
local function store_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
