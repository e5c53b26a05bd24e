-- Turnout's helpers inside HAProxy (loaded by `lua-load` from the config Turnout generates,
-- src/traffic/haproxy/config.ts). Two things the configuration language cannot say:
--
-- 1. `turnout_bucket_v1(<salt as hex>)`, a converter: Turnout's sticky bucket, hash version 1
--    (src/core/hashing.ts): floor(murmur3_x86_32(utf8(salt .. ":" .. key), seed 0) * 10^6 / 2^32).
--    The same key gets the same bucket, hence the same version and A/B arm, as with the built-in
--    router; test/fixtures/hashing-vectors.json pins it (src/traffic/haproxy/lua.test.ts runs
--    them through a real HAProxy). A new hash version is a new converter beside this one, never
--    an edit of it. The salt comes hex-encoded so that no character of it can upset the config
--    parser; it is decoded once and cached.
--    Cost: one pass over the bytes of salt:key with 64-bit integer arithmetic masked to 32 bits
--    (Lua 5.3 integers), no table allocated; the concatenation is the one string made per call.
--
-- 2. `turnout_match`, an http-request action: the service's match rules (header, cookie, path
--    prefix -> version), evaluated in order, the first whose conditions all hold setting
--    `txn.tv` (the version). Rules live in the map file `<TURNOUT_HAPROXY_DIR>/rules.map` under
--    the key `r`, which Turnout replaces over the runtime API (`set map`), so rules change
--    without a reload. The encoded rule list is parsed again only when it changes (a string
--    comparison per request otherwise). Encoding (config.ts `encodeRules`): rules joined by ";",
--    each "version,pathPrefix,hkind,hname,hvalue,ckind,cname,cvalue" with every field
--    percent-encoded and "" for absent; kinds: "e" equals, "r" regex, "x1" exists, "x0" absent.
--    Regexes run on HAProxy's PCRE2 (Turnout's schema checks them with RE2, whose syntax is a
--    subset of PCRE's for what it accepts).

local BUCKET_SCALE = 1000000

local function murmur3(s)
  local h = 0
  local len = #s
  local nblocks = len // 4
  local byte = string.byte
  local i = 1
  for _ = 1, nblocks do
    local b1, b2, b3, b4 = byte(s, i, i + 3)
    local k = b1 | (b2 << 8) | (b3 << 16) | (b4 << 24)
    k = (k * 0xcc9e2d51) & 0xffffffff
    k = ((k << 15) | (k >> 17)) & 0xffffffff
    k = (k * 0x1b873593) & 0xffffffff
    h = h ~ k
    h = ((h << 13) | (h >> 19)) & 0xffffffff
    h = (h * 5 + 0xe6546b64) & 0xffffffff
    i = i + 4
  end
  local rem = len - nblocks * 4
  if rem > 0 then
    local k = 0
    if rem == 3 then k = k ~ (byte(s, i + 2) << 16) end
    if rem >= 2 then k = k ~ (byte(s, i + 1) << 8) end
    k = k ~ byte(s, i)
    k = (k * 0xcc9e2d51) & 0xffffffff
    k = ((k << 15) | (k >> 17)) & 0xffffffff
    k = (k * 0x1b873593) & 0xffffffff
    h = h ~ k
  end
  h = h ~ len
  h = h ~ (h >> 16)
  h = (h * 0x85ebca6b) & 0xffffffff
  h = h ~ (h >> 13)
  h = (h * 0xc2b2ae35) & 0xffffffff
  h = h ~ (h >> 16)
  return h
end

local salts = {}

local function unhex(hex)
  return (hex:gsub("%x%x", function(p) return string.char(tonumber(p, 16)) end))
end

core.register_converters("turnout_bucket_v1", function(key, salthex)
  if key == nil or #key == 0 then return nil end
  local prefix = salts[salthex]
  if prefix == nil then
    prefix = unhex(salthex or "") .. ":"
    salts[salthex] = prefix
  end
  -- h * 10^6 < 2^52: exact in a 64-bit integer, and >> 32 is the floor of the division.
  return (murmur3(prefix .. key) * BUCKET_SCALE) >> 32
end)

-- Plain murmur3 of a string, for tests and for other tools that want to check the port.
core.register_converters("turnout_murmur3", function(s)
  if s == nil then return nil end
  return murmur3(s)
end)

-- ---------------------------------------------------------------------------------------
-- Match rules
-- ---------------------------------------------------------------------------------------

local function pct_decode(s)
  return (s:gsub("%%(%x%x)", function(p) return string.char(tonumber(p, 16)) end))
end

local function split(s, sep)
  local out = {}
  local from = 1
  while true do
    local at = string.find(s, sep, from, true)
    if at == nil then
      out[#out + 1] = string.sub(s, from)
      return out
    end
    out[#out + 1] = string.sub(s, from, at - 1)
    from = at + 1
  end
end

local function condition(kind, name, value)
  if kind == "" then return nil end
  local c = { kind = kind, name = pct_decode(name), value = pct_decode(value) }
  if kind == "r" then
    local ok, re = Regex.new(c.value, false)
    -- A regex PCRE refuses (the schema checked it with RE2) makes its rule never match.
    if not ok then c.kind = "never" else c.re = re end
  end
  return c
end

local function parse_rules(src)
  local rules = {}
  if src == "" or src == "-" then return rules end
  for _, text in ipairs(split(src, ";")) do
    local f = split(text, ",")
    if #f == 8 then
      rules[#rules + 1] = {
        version = pct_decode(f[1]),
        prefix = f[2] ~= "" and pct_decode(f[2]) or nil,
        header = condition(f[3], f[4], f[5]),
        cookie = condition(f[6], f[7], f[8]),
      }
    end
  end
  return rules
end

local function holds(c, value)
  local k = c.kind
  if k == "x1" then return value ~= nil end
  if k == "x0" then return value == nil end
  if value == nil then return false end
  if k == "e" then return value == c.value end
  if k == "r" then return c.re:exec(value) end
  return false
end

-- As src/router/select.ts `pathHasPrefix`: whole segments, compared as sent.
local function has_prefix(path, prefix)
  if path == nil then return prefix == "/" end
  if string.sub(path, 1, #prefix) ~= prefix then return false end
  if string.sub(prefix, -1) == "/" then return true end
  local nxt = string.sub(path, #prefix + 1, #prefix + 1)
  return nxt == "" or nxt == "/" or nxt == "?" or nxt == "#"
end

-- As src/router/select.ts `cookieValue`: the first pair with this exact name, over every Cookie
-- header in order, surrounding blanks and one pair of double quotes removed.
local function cookie_value(txn, name)
  local n = txn.f:req_fhdr_cnt("cookie") or 0
  for i = 1, n do
    local header = txn.f:req_fhdr("cookie", i)
    if header ~= nil then
      for _, pair in ipairs(split(header, ";")) do
        local p = pair:gsub("^[ \t]+", "")
        if string.sub(p, 1, #name + 1) == name .. "=" then
          local v = string.sub(p, #name + 2):gsub("^[ \t]+", ""):gsub("[ \t]+$", "")
          if #v >= 2 and string.sub(v, 1, 1) == '"' and string.sub(v, -1) == '"' then
            v = string.sub(v, 2, -2)
          end
          return v
        end
      end
    end
  end
  return nil
end

local rules_map = nil
local rules_src = nil
local rules = {}

core.register_init(function()
  local dir = os.getenv("TURNOUT_HAPROXY_DIR")
  if dir ~= nil and dir ~= "" then rules_map = Map.new(dir .. "/rules.map", Map._str) end
end)

core.register_action("turnout_match", { "http-req" }, function(txn)
  if rules_map == nil then return end
  local src = rules_map:lookup("r")
  if src == nil then return end
  if src ~= rules_src then
    rules = parse_rules(src)
    rules_src = src
  end
  local path = nil
  for i = 1, #rules do
    local r = rules[i]
    local ok = true
    if r.prefix ~= nil then
      path = path or txn.f:path()
      ok = has_prefix(path, r.prefix)
    end
    if ok and r.header ~= nil then
      local n = txn.f:req_fhdr_cnt(r.header.name) or 0
      ok = holds(r.header, n > 0 and txn.f:req_fhdr(r.header.name, 1) or nil)
    end
    if ok and r.cookie ~= nil then ok = holds(r.cookie, cookie_value(txn, r.cookie.name)) end
    if ok then
      txn:set_var("txn.tv", r.version)
      return
    end
  end
end, 0)
