-- wrk script: every request carries an x-user-id from a pool of 10,000 users, so Turnout's
-- sticky assignment hashes a different key per request. The requests are formatted once in
-- init(); request() only hands back a prebuilt string, which keeps wrk's own per-request cost
-- (it shares a core with the backends) close to that of a plain run. The same script is used
-- against every proxy.
local users = 10000
local reqs = {}
local i = 0

function init(args)
  for k = 1, users do
    reqs[k] = wrk.format("GET", "/", { ["x-user-id"] = "user-" .. k })
  end
end

function request()
  i = i + 1
  if i > users then i = 1 end
  return reqs[i]
end
