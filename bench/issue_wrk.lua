-- wrk script for bench/issue.py: POST one pre-made body per request, each used once.
-- env: WRK_BODIES (file, one body per line), WRK_PATH, WRK_FORM ("1": form-encoded), WRK_AUTH (Authorization),
--      WRK_TOKENS_OUT (file: append the access_token of each response),
--      WRK_ONCE ("1": stop once every body has been answered, so none is sent twice; else cycle through them).
local path = os.getenv("WRK_PATH") or "/v1/tasks"
local auth = os.getenv("WRK_AUTH")
local form = os.getenv("WRK_FORM") == "1"
local tout = os.getenv("WRK_TOKENS_OUT")
local once = os.getenv("WRK_ONCE") == "1"
local bodies, sent, answered, out = {}, 0, 0, nil
-- wrk reports its whole -d duration even when a thread stops early: a run that stops once every
-- body is answered measures its own duration instead (first request to last answer).
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
int clock_gettime(int clk_id, wrk_timespec *tp);
]]
local clock = ffi.new("wrk_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end
first_us, stopped_us = nil, nil  -- globals: read from `done` through thread:get
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = form and "application/x-www-form-urlencoded" or "application/json"
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

function init(args)
  if tout then out = io.open(tout, "a") end
end

function request()
  if not first_us then first_us = now_us() end
  sent = sent + 1
  return wrk.format(nil, path, nil, bodies[((sent - 1) % #bodies) + 1])
end

function response(status, headers, body)
  answered = answered + 1
  if out then
    local token = body:match('"access_token":"([^"]+)"')
    if token then out:write(token, "\n") end
  end
  if once and answered >= #bodies then
    stopped_us = now_us()
    if out then out:flush() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local duration = summary.duration
  for _, thread in ipairs(threads) do
    local first, stopped = thread:get("first_us"), thread:get("stopped_us")
    if first and stopped then duration = math.min(duration, stopped - first) end
  end
  io.write(string.format('JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
