-- wrk script: POST /clearkey with a different token (and user) per request,
-- counting 200s across threads and printing latency percentiles.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  tokens[#tokens + 1] = line
end
local body = os.getenv("BENCH_BODY")
local i = math.random(#tokens)
ok, bad = 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  i = i % #tokens + 1
  return wrk.format("POST", "/clearkey", { ["X-AxDRM-Message"] = tokens[i] }, body)
end

-- BENCH_PACE_MS=n: each connection waits a random 0.8n..1.2n ms before its
-- next request, so the load arrives at a set rate instead of as fast as
-- berth answers (wrk measures latency from send to answer, without the wait).
local pace = tonumber(os.getenv("BENCH_PACE_MS") or "")
if pace then
  function delay()
    return math.random(math.floor(pace * 0.8), math.ceil(pace * 1.2))
  end
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_bad = total_bad + t:get("bad")
  end
  io.write(string.format(
    "RESULT requests=%d ok=%d bad=%d socket_errors=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
    summary.requests, total_ok, total_bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000))
end
