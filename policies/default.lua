-- Tether's built-in default policy (compiled into the binary).
--
-- Allow an executable only when root owns it and nobody else can change it: owned by uid 0
-- and neither group- nor world-writable; for a script, its interpreter too.  Deny a workload whose environment sets a variable
-- that makes the dynamic loader (or iconv) load code of the caller's choosing, such as
-- LD_PRELOAD.  Anything else, or an executable that could not be measured, is denied with
-- every failed check as a reason.
--
-- What is allowed runs confined: the default seccomp filter (doc/seccomp.md), no_new_privs,
-- and, for a workload that is not root, no capabilities at all.
--
-- default.rego is its twin and must decide exactly the same on every input: every value is
-- read with get() and its type checked before it is used, so that no input makes this file
-- raise an error, and the Rego twin can mirror each check (policies/README.md).

local GROUP_WRITE, WORLD_WRITE = 0x10, 0x02 -- 0020 and 0002
local UID_MAX, MODE_MAX = 0xffffffff, 0xfff -- 07777

-- Environment variables that load code into a dynamically linked program: every LD_*
-- variable that glibc drops for setuid programs (its "unsecvars"), musl's LD_PRELOAD and
-- LD_LIBRARY_PATH among them, GCONV_PATH (iconv loads modules from it) and GETCONF_DIR
-- (getconf executes programs from it).
local LOADER_VARIABLES = {
  GCONV_PATH = true,
  GETCONF_DIR = true,
  LD_AUDIT = true,
  LD_DEBUG_OUTPUT = true,
  LD_DYNAMIC_WEAK = true,
  LD_HWCAP_MASK = true,
  LD_LIBRARY_PATH = true,
  LD_ORIGIN_PATH = true,
  LD_PRELOAD = true,
  LD_PROFILE = true,
  LD_SHOW_AUXV = true,
  LD_USE_LOAD_BIAS = true,
}

-- Member k of t when t is a table, else nil: a missing member, a null one and one whose
-- parent is not an object all read as nil.
local function get(t, k)
  if type(t) == "table" then
    return t[k]
  end
  return nil
end

-- x when it is an integer from 0 to top, else nil.
local function whole(x, top)
  if math.type(x) == "integer" and x >= 0 and x <= top then
    return x
  end
  return nil
end

-- Check an env_names value, adding to reasons.  Absent (nil) is an empty list; a table
-- whose keys are all integers (a JSON array; null members are holes and are skipped) and
-- whose values are all strings is a list of names; anything else is a deny.  An empty
-- table passes, since Lua cannot tell {} from [].
local function check_env(names, truncated, field, whose, reasons)
  if names == nil then
    return
  end
  -- Names past the first 256 (or longer than 256 bytes) are left out of the list: a loader
  -- variable may be among them, so only a list known to be whole is judged.
  if truncated ~= false then
    reasons[#reasons + 1] = field .. " is not known to be whole (env_truncated is not false): "
                            .. "a loader variable may be among the names left out"
  end
  local list = type(names) == "table"
  if list then
    for k, v in pairs(names) do
      if math.type(k) ~= "integer" or type(v) ~= "string" then
        list = false
        break
      end
    end
  end
  if not list then
    reasons[#reasons + 1] = field .. " is not a list of names"
    return
  end
  local seen = {}
  for _, name in pairs(names) do
    if LOADER_VARIABLES[name] and not seen[name] then
      seen[name] = true
      reasons[#reasons + 1] = string.format("%s sets %s, a loader variable the default policy refuses",
                                            whose, name)
    end
  end
end

function decide(input)
  -- A container at a runtime hook: this policy judges executables, not images.
  if get(get(input, "tether"), "phase") == "hook" then
    return { allow = false, reasons = { "the default policy does not judge containers: "
                                        .. "configure a container policy (policies/README.md)" } }
  end
  local workload = get(input, "workload")
  local exe = get(workload, "exe")
  local path = get(exe, "path")

  local reasons = {}
  if type(path) ~= "string" then
    reasons[#reasons + 1] = "the executable could not be measured"
  else
    local owner_uid = whole(get(exe, "owner_uid"), UID_MAX)
    if owner_uid == nil then
      reasons[#reasons + 1] = string.format("the owner of %s could not be measured", path)
    elseif owner_uid ~= 0 then
      reasons[#reasons + 1] = string.format("%s is owned by uid %d, not root", path, owner_uid)
    end
    local mode = whole(get(exe, "mode"), MODE_MAX)
    if mode == nil then
      reasons[#reasons + 1] = string.format("the mode of %s could not be measured", path)
    else
      if mode & GROUP_WRITE ~= 0 then
        reasons[#reasons + 1] = string.format("%s is group-writable (mode %04o)", path, mode)
      end
      if mode & WORLD_WRITE ~= 0 then
        reasons[#reasons + 1] = string.format("%s is world-writable (mode %04o)", path, mode)
      end
    end
  end
  -- A script runs as its interpreter (exe.interpreter), which must pass the same checks.
  local interp = get(exe, "interpreter")
  if type(path) == "string" and interp ~= nil then
    local ipath = get(interp, "path")
    if type(ipath) ~= "string" then
      reasons[#reasons + 1] = string.format("the interpreter of %s could not be measured", path)
    else
      local iowner = whole(get(interp, "owner_uid"), UID_MAX)
      if iowner == nil then
        reasons[#reasons + 1] = string.format("the owner of the interpreter %s could not be measured",
                                              ipath)
      elseif iowner ~= 0 then
        reasons[#reasons + 1] = string.format("the interpreter %s is owned by uid %d, not root",
                                              ipath, iowner)
      end
      local imode = whole(get(interp, "mode"), MODE_MAX)
      if imode == nil then
        reasons[#reasons + 1] = string.format("the mode of the interpreter %s could not be measured",
                                              ipath)
      else
        if imode & GROUP_WRITE ~= 0 then
          reasons[#reasons + 1] = string.format("the interpreter %s is group-writable (mode %04o)",
                                                ipath, imode)
        end
        if imode & WORLD_WRITE ~= 0 then
          reasons[#reasons + 1] = string.format("the interpreter %s is world-writable (mode %04o)",
                                                ipath, imode)
        end
      end
    end
  end
  check_env(get(workload, "env_names"), get(workload, "env_truncated"), "workload.env_names",
            "the environment", reasons)
  local container = get(input, "container")
  local process = get(container, "process")
  check_env(get(process, "env_names"), get(process, "env_truncated"), "container.process.env_names",
            "the container's environment", reasons)
  if #reasons > 0 then
    return { allow = false, reasons = reasons }
  end

  local why = path .. " is owned by root and writable only by root"
  -- A container runtime (tether run --bundle) confines the container itself, from its
  -- config.json; confining the runtime would only stop it from doing so.
  if container ~= nil then
    return { allow = true, reasons = { why } }
  end
  local confine = { seccomp = "default", no_new_privs = true }
  if whole(get(get(workload, "user"), "uid"), UID_MAX) ~= 0 then -- unknown is not root
    confine.capabilities = {}
  end
  return { allow = true, reasons = { why }, confine = confine }
end
