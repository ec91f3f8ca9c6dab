-- wrk script: POST /clearkey (or, with BENCH_SPC, /fairplay/license) with a
-- different token (and user) per request, counting 200s and printing latency
-- percentiles.
--
-- The requests are formatted once, up front, and there is no response()
-- callback (wrk counts answers >= 400 itself in summary.errors.status; berth
-- answers 200 or an error), so per request wrk only picks the next string:
-- wrk shares berth's two cores, and formatting each request and handing every
-- answer's headers and body to Lua cost it 16.5 us per license against 10.1 us
-- now (and 7-9 us per /healthz, which runs no Lua at all).
local requests = {}
local i = 0

-- Per thread, after wrk has set the Host header that wrk.format adds.
-- BENCH_SPC=file: FairPlay instead, POST /fairplay/license with that SPC's
-- bytes (one Apple device's request, from tests/api/fairplay_client.py) and
-- the same tokens; berth opens the SPC (RSA-OAEP, Apple's D function, AES)
-- and answers a CKC each time.
function init(args)
  local path, body, headers = "/clearkey", os.getenv("BENCH_BODY"), {}
  local spc = os.getenv("BENCH_SPC")
  if spc then
    local file = assert(io.open(spc, "rb"))
    path, body = "/fairplay/license", file:read("*a")
    file:close()
    headers["Content-Type"] = "application/octet-stream"
  end
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    headers["X-AxDRM-Message"] = line
    requests[#requests + 1] = wrk.format("POST", path, headers, body)
  end
  i = math.random(#requests)
end

function request()
  i = i % #requests + 1
  return requests[i]
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

function done(summary, latency, requests)
  local bad = summary.errors.status
  io.write(string.format(
    "RESULT requests=%d ok=%d bad=%d socket_errors=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
    summary.requests, summary.requests - bad, bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000))
end
