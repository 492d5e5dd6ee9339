-- wrk script for the churn test: counts every response that is not 2xx (wrk's own
-- "Non-2xx or 3xx" line misses 1xx/3xx) and the distinct values of the X-Bench-Gen
-- response header, which the churn loop changes: seeing many proves the changes
-- reached the data plane while the load ran.
--
-- Prints, after wrk's summary:  churn: total=N non2xx=N gens=N statuses=200:N,...

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  total, non2xx, gens, statuses = 0, 0, {}, {}
  wrk.headers["Accept"] = "application/json"
end

function response(status, headers, body)
  total = total + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  statuses[status] = (statuses[status] or 0) + 1
  local g = headers["X-Bench-Gen"] or headers["x-bench-gen"]
  if g then gens[g] = true end
end

function done(summary, latency, requests)
  local t, n, seen, by = 0, 0, {}, {}
  for _, thread in ipairs(threads) do
    t = t + thread:get("total")
    n = n + thread:get("non2xx")
    for g in pairs(thread:get("gens")) do seen[g] = true end
    for s, c in pairs(thread:get("statuses")) do by[s] = (by[s] or 0) + c end
  end
  local count = 0
  for _ in pairs(seen) do count = count + 1 end
  local parts = {}
  for s, c in pairs(by) do table.insert(parts, s .. ":" .. c) end
  table.sort(parts)
  io.write(string.format("churn: total=%d non2xx=%d gens=%d statuses=%s socket_errors=%d\n",
    t, n, count, table.concat(parts, ","),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
