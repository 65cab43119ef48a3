-- POST a JSON body per request for wrk.
-- Arguments (after "--" on the wrk command line):
--   1 width   number of features in the vector (default 4)
--   2 mode    "distinct" (a counter in the first feature: every request is new
--             to caches and deduplication) or "same" (one body repeated)
--   3 offset  where the counter starts (the harness gives every run its own)
--   4 prefix  text before the vector   (default {"input":[)
--   5 suffix  text after the vector    (default ]})
-- Features 2..width are ((i * 7919) % 1000) / 1000, as bench/workloads.py.
-- done() prints one line "BENCHJSON {...}" the harness parses.

local counter = 0
local mode = "distinct"
local tail = ""
local prefix = '{"input":['
local suffix = ']}'
local fixed_body = nil
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  local width = tonumber(args[1] or "4")
  mode = args[2] or "distinct"
  counter = tonumber(args[3] or "0")
  if args[4] and args[4] ~= "" then prefix = args[4] end
  if args[5] and args[5] ~= "" then suffix = args[5] end
  local parts = {}
  for i = 2, width do
    parts[#parts + 1] = string.format("%.4f", ((i * 7919) % 1000) / 1000.0)
  end
  if #parts > 0 then tail = "," .. table.concat(parts, ",") end
  if mode == "same" then
    fixed_body = prefix .. "0.5" .. tail .. suffix
  end
end

function request()
  if fixed_body then
    return wrk.format("POST", nil, headers, fixed_body)
  end
  counter = counter + 1
  local body = prefix .. string.format("%.7f", counter * 1e-7) .. tail .. suffix
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
