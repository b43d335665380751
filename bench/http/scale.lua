-- wrk script for bench/scale.py: one-text predicts to task-NNNNN.
-- Arguments (after `--`): mode (zipf | uniform), task count, bodies file, random seed (give
-- each run its own: with one seed every window would replay the same tasks).
--   zipf:    task of rank k (0-based) with probability proportional to 1 / (k + 1)
--   uniform: every task equally likely
-- done() prints one JSON line starting with "SCALE-RESULT".

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local mode, n
local cdf, bodies = {}, {}
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  mode, n = args[1] or "zipf", tonumber(args[2] or "10000")
  for line in io.lines(args[3]) do
    bodies[#bodies + 1] = line
  end
  math.randomseed(tonumber(args[4] or "4242") + 7919 * id)
  if mode == "zipf" then
    local total, acc = 0, 0
    for k = 1, n do total = total + 1 / k end
    for k = 1, n do
      acc = acc + (1 / k) / total
      cdf[k] = acc
    end
  end
end

local function pick()
  if mode == "uniform" then
    return math.random(0, n - 1)
  end
  local u, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo - 1
end

function request()
  local task = pick()
  local body = bodies[math.random(1, #bodies)]
  return wrk.format("POST", string.format("/v1/task-%05d/predict", task), headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SCALE-RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, ' ..
    '"socket_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
