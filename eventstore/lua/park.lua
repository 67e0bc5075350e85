-- Park one entry for its own fault: append it to its dead-letter stream and acknowledge it, in one step
-- and once. Run again (a retry after a lost reply, or two scorers that both held the entry) it parks
-- nothing more: an entry is parked only while its group still holds it unacknowledged.
-- KEYS: the stream, its dead-letter stream, its rejections hash.
-- ARGV: the group, the entry id, the raw entry, the error.
-- Answers 1 when it parked the entry, 0 when it was no longer pending (parked or projected already) or its
-- dead-letter stream holds it already (a consumer group rewound after a restore of PostgreSQL delivers it
-- again: acknowledged, not parked twice; the dead-letter stream is small, never trimmed).
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #pending == 0 then
  return 0
end
for _, row in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
  local fields = row[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'entry_id' and fields[i + 1] == ARGV[2] then
      redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
      return 0
    end
  end
end
redis.call('XADD', KEYS[2], '*', 'entry_id', ARGV[2], 'raw', ARGV[3], 'error', ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
