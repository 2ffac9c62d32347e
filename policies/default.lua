-- Tether's built-in default policy (compiled into the binary).
--
-- Allow an executable only when root owns it and nobody else can change it: owned by uid 0
-- and neither group- nor world-writable.  Anything else, or an executable that could not
-- be measured, is denied with the reason.
--
-- What is allowed runs confined: the default seccomp filter (doc/seccomp.md), no_new_privs,
-- and, for a workload that is not root, no capabilities at all.

local GROUP_WRITE, WORLD_WRITE = 0x10, 0x02   -- 0020 and 0002

function decide(input)
  -- A container at a runtime hook: this policy judges executables, not images.
  if input.tether ~= nil and input.tether.phase == "hook" then
    return { allow = false, reasons = { "the default policy does not judge containers: "
                                        .. "configure a container policy (policies/README.md)" } }
  end
  local exe = input.workload and input.workload.exe
  if exe == nil then
    return { allow = false, reasons = { "the executable could not be measured" } }
  end

  local reasons = {}
  if exe.owner_uid ~= 0 then
    reasons[#reasons + 1] = string.format("%s is owned by uid %d, not root", exe.path, exe.owner_uid)
  end
  if exe.mode & GROUP_WRITE ~= 0 then
    reasons[#reasons + 1] = string.format("%s is group-writable (mode %04o)", exe.path, exe.mode)
  end
  if exe.mode & WORLD_WRITE ~= 0 then
    reasons[#reasons + 1] = string.format("%s is world-writable (mode %04o)", exe.path, exe.mode)
  end
  if #reasons > 0 then
    return { allow = false, reasons = reasons }
  end
  -- A container runtime (tether run --bundle) confines the container itself, from its
  -- config.json; confining the runtime would only stop it from doing so.
  if input.container ~= nil then
    return {
      allow = true,
      reasons = { exe.path .. " is owned by root and writable only by root" },
    }
  end
  local confine = { seccomp = "default", no_new_privs = true }
  local user = input.workload.user
  if user == nil or user.uid ~= 0 then -- unknown is treated as not root
    confine.capabilities = {}
  end
  return {
    allow = true,
    reasons = { exe.path .. " is owned by root and writable only by root" },
    confine = confine,
  }
end
