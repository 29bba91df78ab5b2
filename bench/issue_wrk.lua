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
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = form and "application/x-www-form-urlencoded" or "application/json"
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

function init(args)
  if tout then out = io.open(tout, "a") end
end

function request()
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
    if out then out:flush() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format('JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
