-- Geofencing: allow a workload only on nodes in an allowed region, and only when its
-- executable is one of a known set (by sha256).
--
-- The region comes from the node configuration (/etc/tether/tether.json, "labels":
-- {"region": ...}), which the node's operator controls.  Edit the two tables below.
--
-- geofence.rego is its twin and must decide exactly the same on every input: every value
-- is read with get() and its type checked before it is used (policies/README.md).

local allowed_regions = {
  ["eu-de"] = true,
  ["eu-fr"] = true,
  ["eu-nl"] = true,
}

-- sha256 of each approved executable, e.g. from `sha256sum /usr/bin/true`.
local allowed_sha256 = {
  -- ["<64 hex digits>"] = "description",
}

-- Member k of t when t is a table, else nil: a missing member, a null one and one whose
-- parent is not an object all read as nil.
local function get(t, k)
  if type(t) == "table" then
    return t[k]
  end
  return nil
end

function decide(input)
  local reasons = {}
  local region = get(get(get(input, "host"), "labels"), "region")
  if region == nil then
    reasons[#reasons + 1] = "this node has no region label"
  elseif type(region) ~= "string" then
    reasons[#reasons + 1] = "this node's region label is not a string"
  elseif not allowed_regions[region] then
    reasons[#reasons + 1] = string.format("region %s is not an allowed region", region)
  end

  local exe = get(get(input, "workload"), "exe")
  local sha, path = get(exe, "sha256"), get(exe, "path")
  local name = type(path) == "string" and path or "the executable"
  if type(sha) ~= "string" then
    reasons[#reasons + 1] = "the executable's sha256 could not be measured"
  elseif allowed_sha256[sha] == nil then
    reasons[#reasons + 1] = string.format("%s (sha256 %s) is not on the allowlist", name, sha)
  end

  if #reasons > 0 then
    return { allow = false, reasons = reasons }
  end
  return { allow = true, reasons = { string.format("%s approved in region %s", name, region) } }
end
