-- wrk script for bench/api_bench.py: a logged-in member reads a group timeline page of 20,
-- half first pages and half at a random max_id inside the seeded range (same mix as the
-- Python load generator). Parameters come from the environment.
local token = os.getenv("HS_TOKEN")
local path = os.getenv("HS_PATH")
local newest_ms = tonumber(os.getenv("HS_NEWEST_MS"))
local span_ms = tonumber(os.getenv("HS_SPAN_MS"))
local headers = { ["Authorization"] = "Bearer " .. token }
local n = 0

function setup(thread)
  math.randomseed(7)
end

function request()
  n = n + 1
  local target = path .. "?limit=20"
  if n % 2 == 1 then
    local ms = newest_ms - math.random(0, span_ms)
    target = target .. "&max_id=" .. string.format("%.0f", ms * 65536)
  end
  return wrk.format("GET", target, headers)
end
