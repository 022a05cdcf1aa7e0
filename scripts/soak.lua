-- wrk script for scripts/soak.sh: a mixed load of the API.
--   70% GET /v1/shows (the catalogue)        -> 200
--   10% GET /v1/shows/<slug> of a sample show -> 200
--    5% GET /v1/shows/<absent slug>           -> 404 (intended)
--   12% POST a feed of 5 shows               -> 201 (slugs from a bounded set, so the
--                                               store stops growing and RSS can settle)
--    3% POST an invalid feed                  -> 400 (intended)
-- Needs TOKEN in the environment. Counts every status; `done` prints them as
-- "status <code> <count>" lines for the script to judge.

local token = os.getenv("TOKEN") or error("TOKEN is not set")
local auth = "Bearer " .. token
local counter = 0
counts = {}

local function feed(n)
  local items = {}
  for i = 0, 4 do
    local k = (n * 5 + i) % 1000
    items[#items + 1] = string.format(
      '{"slug":"show/soak-%d","title":"Soak %d","drm":true,"episodeCount":%d,' ..
      '"image":{"showImage":"https://img.example/soak/%d.jpg"},"description":"%s"}',
      k, n, (n % 50) + 1, k, string.rep("x", 200))
  end
  return '{"payload":[' .. table.concat(items, ",") .. ']}'
end

request = function()
  counter = counter + 1
  local r = counter % 100
  if r < 70 then
    return wrk.format("GET", "/v1/shows", { ["Authorization"] = auth })
  elseif r < 80 then
    return wrk.format("GET", string.format("/v1/shows/show/sample-%06d", counter % 12),
      { ["Authorization"] = auth })
  elseif r < 85 then
    return wrk.format("GET", "/v1/shows/show/absent-" .. counter, { ["Authorization"] = auth })
  elseif r < 97 then
    return wrk.format("POST", "/v1/shows",
      { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, feed(counter))
  else
    return wrk.format("POST", "/v1/shows",
      { ["Authorization"] = auth, ["Content-Type"] = "application/json" },
      '{"payload":[{"slug":"Not A Slug","title":""}]}')
  end
end

response = function(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

local threads = {}
setup = function(thread)
  threads[#threads + 1] = thread
end

done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("status %d %d\n", status, n))
  end
  local e = summary.errors
  io.write(string.format("socket_errors connect=%d read=%d write=%d timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("latency_ms p50=%.2f p99=%.2f max=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
