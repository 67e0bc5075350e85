-- A scorer's leases on the streams: it keeps (renews) those it holds up to its fair share, gives back
-- the rest, and takes free ones until it holds its share; a share of 0 gives everything back (a
-- graceful stop). Leases spread the work; they are not what makes it correct (archiving is idempotent).
-- KEYS: every stream's lease. ARGV: consumer, ttl ms, fair share.
-- Answers per key 1 when this consumer holds it afterwards, else 0.
local me, ttl, fair = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out, held = {}, 0
for i, key in ipairs(KEYS) do
  out[i] = 0
  if redis.call('GET', key) == me then
    if held < fair then
      redis.call('PEXPIRE', key, ttl)
      held, out[i] = held + 1, 1
    else
      redis.call('DEL', key)
    end
  end
end
for i, key in ipairs(KEYS) do
  if held >= fair then break end
  if redis.call('SET', key, me, 'NX', 'PX', ttl) then
    held, out[i] = held + 1, 1
  end
end
return out
