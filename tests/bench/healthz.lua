-- wrk script: the /healthz baseline, with the same percentiles as clearkey.lua.
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
