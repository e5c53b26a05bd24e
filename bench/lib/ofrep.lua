-- wrk script for OFREP single-flag evaluation: a POST per request with a different
-- targetingKey each time (100,000 users), so the percentage flag really hashes every request.
-- The client key comes from the environment (TURNOUT_FLAG_KEY).
local key = os.getenv("TURNOUT_FLAG_KEY")
local n = 0
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = key

request = function()
  n = n + 1
  local body = '{"context":{"targetingKey":"user-' .. (n % 100000) .. '","email":"u' .. n .. '@acme.com"}}'
  return wrk.format(nil, nil, nil, body)
end
