-- wrk script of bench/oidc_token.py: the same token request on every connection, every
-- answer other than 200 counted, at most BENCH_MAX_REQUESTS answers per thread, and the
-- figures written as one JSON line for the bench to read (exact microseconds, not wrk's
-- rounded text).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")

local threads = {}
local limit = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "1000000")

function setup(thread)
  table.insert(threads, thread)
end

answered = 0
not_ok = 0

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then
    not_ok = not_ok + 1
  end
  if answered >= limit then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local non_200 = 0
  for _, thread in ipairs(threads) do
    non_200 = non_200 + thread:get("not_ok")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_200": %d, "connect": %d, "read": %d, "write": %d, '
      .. '"timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, non_200, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
