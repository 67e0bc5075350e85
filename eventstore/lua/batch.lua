-- Appended after a script's `one(A)`: the script handles a whole batch of requests in ONE call.
-- ARGV = n, then per item its argument count and arguments; the reply is one answer per item, in
-- order, so a repeat inside the same batch sees the writes of the items before it.
local out, p = {}, 2
for i = 1, tonumber(ARGV[1]) do
  local k, A = tonumber(ARGV[p]), {}
  for j = 1, k do A[j] = ARGV[p + j] end
  out[i] = one(A)
  p = p + k + 1
end
return out
