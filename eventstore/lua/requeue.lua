-- Put a parked entry back on its stream (under a new id) and drop it from the parking, in one step and
-- once: run again, it finds the parked entry gone and appends nothing (a second copy would be a second
-- event id for the same entry).
-- KEYS: the stream, its dead-letter stream. ARGV: the dead-letter id, the stream's event field.
-- Answers the new id, or false when nothing is parked under that id (any more).
local rows = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #rows == 0 then
  return false
end
local fields, raw = rows[1][2], ''
for i = 1, #fields, 2 do
  if fields[i] == 'raw' then
    raw = fields[i + 1]
  end
end
local id = redis.call('XADD', KEYS[1], '*', ARGV[2], raw)
redis.call('XDEL', KEYS[2], ARGV[1])
return id
