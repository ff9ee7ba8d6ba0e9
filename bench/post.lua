-- wrk script: POST an Alertmanager webhook body, print the results as one JSON line.
-- args: <template file> <captured startsAt> <unique_every: 0 never, 1 always, N every Nth> <salt>
-- The template has @@T@@ for every startsAt. A repeat uses the captured value (the same alert
-- state again); a unique one gets 2030-01-01T<thread>:<salt>:00.<request number>Z, a new
-- alert episode that no other request of this wrk run (thread) or of another salt repeats.

local parts = {}
local static_request
local unique_every = 0
local salt = 0
local sent = 0
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

local function split(text, sep)
  local out, start = {}, 1
  while true do
    local i, j = string.find(text, sep, start, true)
    if not i then
      table.insert(out, string.sub(text, start))
      return out
    end
    table.insert(out, string.sub(text, start, i - 1))
    start = j + 1
  end
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local template = f:read("*a")
  f:close()
  parts = split(template, "@@T@@")
  unique_every = tonumber(args[3]) or 0
  salt = tonumber(args[4]) or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  static_request = wrk.format("POST", nil, nil, table.concat(parts, args[2]))
end

function request()
  sent = sent + 1
  if unique_every > 0 and sent % unique_every == 0 then
    local ts = string.format(
      "2030-01-01T%02d:%02d:00.%09dZ", (thread_index or 0) % 24, salt % 60, sent)
    return wrk.format("POST", nil, nil, table.concat(parts, ts))
  end
  return static_request
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"mean_us":%.1f,"max_us":%d,"p50_us":%d,' ..
    '"p90_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99)))
end
