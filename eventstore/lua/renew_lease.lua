-- A scorer's leases on streams: keep those it holds (renewed), take those nobody holds, give back
-- those asked. Leases spread the work; they are not what makes it correct (archiving is idempotent).
-- KEYS: the leases. ARGV: consumer, ttl ms, then per key 'hold' (renew or take) or 'drop'.
-- Answers per key 1 when this consumer holds it afterwards, else 0.
local out = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if ARGV[2 + i] == 'drop' then
    if owner == ARGV[1] then redis.call('DEL', key) end
    out[i] = 0
  elseif owner == ARGV[1] or not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
