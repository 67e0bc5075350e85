-- wrk script: like submit.lua, but each connection waits between requests so the whole run
-- offers about RATE requests a second (open-ish loop for the freshness benchmark).
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
  pause = 1000 * tonumber(os.getenv("CONNECTIONS")) / tonumber(os.getenv("RATE"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function delay()
  return pause
end

function request()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format(nil, "/v1/submissions", nil, bodies[i])
end
