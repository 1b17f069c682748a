-- wrk script for bench/federation_bench.py: send pre-signed inbox POSTs, each exactly once.
--
-- HS_REQUESTS names a file of raw HTTP/1.1 requests, each preceded by its length in bytes and
-- a newline (the benchmark signed them before the timed phase). request() hands them out in
-- order (the first call of each thread gets a spare request: wrk 4.1 discards it); once all are out, connections that come free get a cheap GET of an unknown path (404)
-- so that no signed activity is ever sent twice. When the answer to the last real request
-- arrives, the thread prints one line
--   WRK_DONE <real answers> <202 answers> <other answers> <first send> <last answer>
-- (times in seconds of CLOCK_MONOTONIC, via LuaJIT's ffi) and stops; the benchmark then ends
-- wrk with SIGINT (wrk itself would sleep until -d) and done() prints the latency line
--   WRK_LATENCY <p50 us> <p99 us> <max us> <socket errors> <timeouts>
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } hs_timespec;
  int clock_gettime(int clk_id, hs_timespec *tp);
]]
local ts = ffi.new("hs_timespec")
local function monotonic()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}
requests = {}
calls = 0
sent = 0
answered = 0
accepted = 0
other = 0
first_send = 0
finished = false

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("HS_REQUESTS"), "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = string.find(data, "\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    requests[#requests + 1] = string.sub(data, nl + 1, nl + len)
    pos = nl + len + 1
  end
end

function request()
  calls = calls + 1
  if calls == 1 then
    -- wrk 4.1 calls request() once per thread before the run and drops the answer.
    return wrk.format("GET", "/_wrk_spare")
  end
  sent = sent + 1
  if sent == 1 then
    first_send = monotonic()
  end
  if sent <= #requests then
    return requests[sent]
  end
  return wrk.format("GET", "/_wrk_spare")
end

function response(status, headers, body)
  if status == 404 or finished then
    return
  end
  answered = answered + 1
  if status == 202 then
    accepted = accepted + 1
  else
    other = other + 1
  end
  if answered == #requests then
    finished = true
    io.write(string.format("WRK_DONE %d %d %d %.6f %.6f\n", answered, accepted, other, first_send, monotonic()))
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_LATENCY %d %d %d %d %d\n", latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write, e.timeout))
end
