-- wrk script: the CORS preflight baseline (issue 37): OPTIONS /clearkey as a
-- browser sends it before a license request from the portal's page, with
-- the same percentiles as clearkey.lua. berth answers it without any work of
-- its own: what the same server costs when it does nothing.
local request_text

function init(args)
  request_text = wrk.format("OPTIONS", "/clearkey", {
    ["Origin"] = "https://portal.vessel.example",
    ["Access-Control-Request-Method"] = "POST",
    ["Access-Control-Request-Headers"] = "content-type,x-axdrm-message",
  })
end

function request()
  return request_text
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
