-- Turnout's helper inside HAProxy (loaded by `lua-load` from the config Turnout generates,
-- src/traffic/haproxy/config.ts): the one thing the configuration language cannot say.
--
-- `turnout_match`, an http-request action: the service's match rules (header, cookie, path
-- prefix -> version), evaluated in order, the first whose conditions all hold setting
-- `txn.tv` (the version). Rules live in the map file `<TURNOUT_HAPROXY_DIR>/rules.map` under
-- the key `r`, which Turnout replaces over the runtime API (`set map`), so rules change
-- without a reload. The config calls the action only while that key exists, so a service
-- without match rules runs no Lua per request. The encoded rule list is parsed again only when
-- it changes (a string comparison per request otherwise). Encoding (config.ts `encodeRules`):
-- rules joined by ";", each "version,pathPrefix,hkind,hname,hvalue,ckind,cname,cvalue" with
-- every field percent-encoded and "" for absent; kinds: "e" equals, "r" regex, "x1" exists,
-- "x0" absent. Regexes run on HAProxy's PCRE2 (Turnout's schema checks them with RE2, whose
-- syntax is a subset of PCRE's for what it accepts).
--
-- The sticky bucket is not computed here any more: HAProxy's native `xxh32` converter does it
-- (src/traffic/haproxy/hash.ts, `haproxy-xxh32-v1`), because a bucket computed in Lua per
-- request cost about 15 % of HAProxy's requests/s (bench/README.md, HAProxy section).

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
