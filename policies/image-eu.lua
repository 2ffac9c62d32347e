-- Images in the EU: release an image's key (allow `tether run --image`) only on nodes whose
-- region label starts with "eu-", and only for an image that carries a signature verified by
-- one of the named signers and made over this image's manifest digest.
--
-- The region comes from the node configuration's labels; the signatures from
-- input.image.signatures, which tether fills by verifying cosign signatures against the
-- node's trusted_image_signers (a signer is named by the key file that verified it).  A
-- workload that is not an image is refused.  The keyprovider phase carries no image, so
-- this policy releases no key to ocicrypt's tools.  An allowed image gets the key image_key.
--
-- image-eu.rego is its twin and must decide exactly the same on every input.

-- The key released to an image allowed here: <keystore>/eu-app.pem for JWE-encrypted layers,
-- <keystore>/eu-app.key for layers wrapped with provider:tether:eu-app.
local image_key = "eu-app"

-- The key files (entries of trusted_image_signers) whose signatures this policy accepts.
local named_signers = {
  ["/etc/tether/signers/release.pub"] = true,
}

-- Member k of t when t is a table, else nil.
local function get(t, k)
  if type(t) == "table" then
    return t[k]
  end
  return nil
end

-- Whether one signature counts: verified, over this image's digest, by a named signer.
local function counts(s)
  local signer = get(s, "signer")
  return get(s, "verified") == true and get(s, "digest_matches") == true
    and type(signer) == "string" and named_signers[signer] == true
end

function decide(input)
  local reasons = {}
  local region = get(get(get(input, "host"), "labels"), "region")
  if region == nil then
    reasons[#reasons + 1] = "this node has no region label"
  elseif type(region) ~= "string" then
    reasons[#reasons + 1] = "this node's region label is not a string"
  elseif string.sub(region, 1, 3) ~= "eu-" then
    reasons[#reasons + 1] = string.format("region %s is not in the EU", region)
  end

  local image = get(input, "image")
  if type(image) ~= "table" then
    reasons[#reasons + 1] = "the workload is not an image"
  else
    local sigs = get(image, "signatures")
    local signed = false
    if type(sigs) == "table" then
      for _, s in pairs(sigs) do
        signed = signed or counts(s)
      end
    end
    if not signed then
      reasons[#reasons + 1] = "the image has no verified signature by a named signer"
    end
  end

  if #reasons > 0 then
    return { allow = false, reasons = reasons }
  end
  return {
    allow = true,
    reasons = { string.format("signed image released in region %s", region) },
    key = { id = image_key },
  }
end
