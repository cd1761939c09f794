-- wrk reporter for the benchmark suite: one JSON line with exact latency percentiles
-- (wrk records latency in microseconds).
done = function(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"ok":%d,"non2xx":%d,"errors":%d,"seconds":%.3f,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.requests - e.status, e.status,
    e.connect + e.read + e.write + e.timeout, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
