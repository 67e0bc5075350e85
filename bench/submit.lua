-- wrk script: POST /v1/submissions, each request a different pre-minted attempt (no duplicates:
-- thread k of THREADS takes lines k, k+THREADS… of the file named in BODIES). With RATE (and
-- CONNECTIONS) set, each connection pauses between requests so the run offers about RATE req/s.
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  bodies, i = {}, 0
  local n = tonumber(os.getenv("THREADS"))
  local line_no = 0
  for line in io.lines(os.getenv("BODIES")) do
    line_no = line_no + 1
    if line_no % n == id % n then table.insert(bodies, line) end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

if os.getenv("RATE") then
  local pause = 1000 * tonumber(os.getenv("CONNECTIONS")) / tonumber(os.getenv("RATE"))
  function delay() return pause end
end

function request()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format(nil, "/v1/submissions", nil, bodies[i])
end
