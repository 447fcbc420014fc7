-- wrk script of the load benchmark (bench/run.sh).
--
--   wrk -t2 -c64 -d5s -s bench/wrk.lua URL -- EXPECTED [PATHS|-] [COOKIE]
--
-- EXPECTED  the status every answer should have (200, or 303 for handshakes);
--           any other status counts as an error.
-- PATHS     a prefix: thread i reads one request path per line from PATHS.i
--           (signed embed URLs, each used once); "-" requests URL's path.
-- COOKIE    a Cookie header to send (the session of session requests).
--
-- Prints one line that bench/loadbench.py reads:
--   RESULT requests=… duration_us=… rps=… p50_us=… p99_us=… errors=… …

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[1]) or 200
  errors = 0
  last_bad = 0
  exhausted = 0
  local paths = args[2]
  if paths and paths ~= "-" then
    file = assert(io.open(paths .. "." .. id, "r"))
  end
  if args[3] and args[3] ~= "" then
    wrk.headers["Cookie"] = args[3]
  end
  fixed = wrk.format(nil)
end

function request()
  if file then
    local path = file:read("*l")
    if path then
      return wrk.format(nil, path)
    end
    -- Out of tokens: the rest of this slice would be replays (401s).
    exhausted = exhausted + 1
  end
  return fixed
end

function response(status, headers, body)
  if status ~= expected then
    errors = errors + 1
    last_bad = status
  end
end

function done(summary, latency, requests)
  local errs, bad, out = 0, 0, 0
  for _, t in ipairs(threads) do
    errs = errs + t:get("errors")
    out = out + t:get("exhausted")
    local b = t:get("last_bad")
    if b ~= 0 then bad = b end
  end
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d errors=%d last_bad_status=%d socket_errors=%d exhausted=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max, errs, bad, socket, out))
end
