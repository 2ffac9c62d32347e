-- Geofencing: allow a workload only on nodes in an allowed region, and only when its
-- executable is one of a known set (by sha256).
--
-- The region comes from the node configuration (/etc/tether/tether.json, "labels":
-- {"region": ...}), which the node's operator controls.  Edit the two tables below.

local allowed_regions = {
  ["eu-de"] = true,
  ["eu-fr"] = true,
  ["eu-nl"] = true,
}

-- sha256 of each approved executable, e.g. from `sha256sum /usr/bin/true`.
local allowed_sha256 = {
  -- ["<64 hex digits>"] = "description",
}

function decide(input)
  local reasons = {}
  local labels = input.host.labels or {}
  local region = labels.region
  if region == nil then
    reasons[#reasons + 1] = "this node has no region label"
  elseif not allowed_regions[region] then
    reasons[#reasons + 1] = string.format("region %s is not an allowed region", region)
  end

  local exe = input.workload and input.workload.exe
  local sha = exe and exe.sha256
  if sha == nil then
    reasons[#reasons + 1] = "the executable's sha256 could not be measured"
  elseif allowed_sha256[sha] == nil then
    reasons[#reasons + 1] = string.format("%s (sha256 %s) is not on the allowlist", exe.path, sha)
  end

  if #reasons > 0 then
    return { allow = false, reasons = reasons }
  end
  return { allow = true, reasons = { string.format("%s approved in region %s", exe.path, region) } }
end
