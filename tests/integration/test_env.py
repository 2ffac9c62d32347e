"""The environment: measured as names only (never values), judged by the policy, and rebuilt
for the workload as the decision's confine.env says."""
import json
import os
import shutil
import subprocess

from harness import Skip, case, eq, main, one_line

SECRET = "s3cret-value-4711"


def measure(ws, env):
    p = ws.tether("measure", "--", "/bin/true", env=env, check_rc=0)
    return p.stdout, json.loads(p.stdout)


@case
def env_names_without_values(ws):
    env = dict(ws.env, API_TOKEN=SECRET, ZZ_LAST="x")
    text, doc = measure(ws, env)
    names = doc["workload"]["env_names"]
    eq(names, sorted(set(names)), "sorted, each once")
    eq(names, sorted(set(k for k in env)), "every name of the environment")
    eq(doc["workload"]["env_truncated"], False, "env_truncated")
    assert SECRET not in text, "a value is in the input document"
    # The policy sees the names (eval on the measured input), and a run records no value.
    pol = ws.policy('local seen = {}\n'
                    'for _, n in ipairs(input.workload.env_names) do seen[n] = true end\n'
                    'return {allow = seen.API_TOKEN == true, reasons = {"names seen"}}')
    p = ws.tether("eval", "--policy", pol, "--input", "-", input=text, check_rc=0)
    assert SECRET not in p.stdout
    p = ws.tether("run", "--policy", pol, "--", "/bin/true", env=env, check_rc=0)
    recs = ws.audit_records()
    eq([r["allow"] for r in recs if r["event"] == "decision"], [True], "the run was decided on")
    assert SECRET not in open(ws.audit).read(), "a value is in the audit trail"
    assert SECRET not in p.stdout + p.stderr


@case
def too_many_or_too_long_names_are_flagged(ws):
    env = dict(ws.env)
    env.update({"V%04d" % i: "x" for i in range(300)})
    _, doc = measure(ws, env)
    eq((len(doc["workload"]["env_names"]), doc["workload"]["env_truncated"]), (256, True),
       "capped at 256 names")
    env = dict(ws.env, **{"L" * 300: "x"})
    _, doc = measure(ws, env)
    eq(doc["workload"]["env_truncated"], True, "a 300-byte name")
    assert "L" * 300 not in doc["workload"]["env_names"]
    # A policy can deny on the flag: a name it does not see may be the one it looks for.
    pol = ws.policy('if input.workload.env_truncated ~= false then\n'
                    '  return {allow = false, reasons = {"the environment was not measured whole"}}\n'
                    'end\nreturn {allow = true}')
    p = ws.tether("run", "--policy", pol, "--", "/bin/true", env=env, check_rc=77)
    assert "not measured whole" in one_line(p.stderr)


DENY_LOADER = ('for _, n in ipairs(input.workload.env_names) do\n'
               '  if n:sub(1, 3) == "LD_" then\n'
               '    return {allow = false, reasons = {n .. " is set"}}\n'
               '  end\n'
               'end\n'
               'return {allow = true}')


def preload_attack(ws):
    """A library whose constructor notes each program it was loaded into, and a check that it
    was loaded into /bin/true (realpath): (library, injected)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise Skip("no C compiler to build the preloaded library")
    marker = ws.path("injected")
    src = ws.write("evil.c", r'''
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void)
{
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    int fd = open("%s", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (n > 0 && fd >= 0) {
        exe[n++] = '\n';
        (void)!write(fd, exe, (size_t)n);
    }
}
''' % marker)
    lib = ws.path("evil.so")
    subprocess.run([cc, "-shared", "-fPIC", "-o", lib, src], check=True)
    target = os.path.realpath("/bin/true")

    def injected():
        try:
            return target in open(marker).read().split("\n")
        except FileNotFoundError:
            return False

    return lib, injected


@case
def ld_preload_is_refused_by_a_policy_that_denies_it(ws):
    lib, injected = preload_attack(ws)
    marker = ws.path("injected")
    env = dict(ws.env, LD_PRELOAD=lib)
    allow = ws.policy("return {allow = true}", "allow.lua")
    ws.tether("run", "--policy", allow, "--", "/bin/true", env=env, check_rc=0)
    assert injected(), "the attack does not work here: the test would prove nothing"
    os.unlink(marker)
    pol = ws.policy(DENY_LOADER)
    p = ws.tether("run", "--policy", pol, "--", "/bin/true", env=env, check_rc=77)
    eq(one_line(p.stderr), "tether: denied: LD_PRELOAD is set", "the reason")
    assert not injected(), "the preloaded library ran in the workload"
    # The same policy with the variable gone allows.
    ws.tether("run", "--policy", pol, "--", "/bin/true", check_rc=0)


@case
def a_loader_variable_past_the_listed_names_is_refused_by_default(ws):
    """Only the first 256 names are listed: 300 names that sort before LD_PRELOAD pushed it
    out of env_names, and the built-in default policy, which looked for it there, let the
    library into the workload.  A list that is not whole is now a deny."""
    lib, injected = preload_attack(ws)
    padded = dict(ws.env, LD_PRELOAD=lib, **{"A%03d" % i: "x" for i in range(300)})
    p = ws.tether("run", "--", "/bin/true", env=padded)
    eq(p.returncode, 77, "exit status: " + p.stderr)
    assert "workload.env_names is not known to be whole" in p.stderr.splitlines()[-1], p.stderr
    assert not injected(), "the preloaded library ran in the workload"
    # Without the padding the variable itself is the reason; without either, /bin/true runs.
    p = ws.tether("run", "--", "/bin/true", env=dict(ws.env, LD_PRELOAD=lib), check_rc=77)
    assert "LD_PRELOAD, a loader variable" in p.stderr.splitlines()[-1], p.stderr
    ws.tether("run", "--", "/bin/true", check_rc=0)


def env_seen(ws, confine_env, env):
    pol = ws.decision_policy({"allow": True, "confine": {"env": confine_env}})
    p = ws.tether("run", "--policy", pol, "--", "/usr/bin/env", env=env, check_rc=0)
    return sorted(p.stdout.splitlines())


@case
def confine_env_changes_what_the_workload_sees(ws):
    env = dict(ws.env, API_TOKEN=SECRET, LANG="C.UTF-8", LD_PRELOAD="", PATH="/evil:/usr/bin")
    eq(env_seen(ws, {"clear": True, "allow": ["PATH", "LANG"], "set": {"PATH": "/usr/bin:/bin"}},
                env),
       ["LANG=C.UTF-8", "PATH=/usr/bin:/bin"], "clear, allow, set")
    eq(env_seen(ws, {"clear": True}, env), [], "clear")
    seen = env_seen(ws, {"set": {"LD_PRELOAD": "", "MODE": "prod"}}, env)
    assert "API_TOKEN=" + SECRET in seen and "MODE=prod" in seen and "LD_PRELOAD=" in seen, seen
    eq(len([e for e in seen if e.startswith("LD_PRELOAD=")]), 1, "set replaces")
    # Without confine.env the environment passes as it is.
    pol = ws.decision_policy({"allow": True, "confine": {"seccomp": "default"}}, "plain.lua")
    p = ws.tether("run", "--policy", pol, "--", "/usr/bin/env", env=env, check_rc=0)
    assert "API_TOKEN=" + SECRET in p.stdout.splitlines()


@case
def bad_confine_env_is_a_deny_that_names_the_field(ws):
    for block, needle in (({"clear": "yes"}, "`confine.env.clear` must be a boolean"),
                          ({"allow": ["PATH"]}, "needs `confine.env.clear = true`"),
                          ({"clear": True, "allow": [1]}, "`confine.env.allow[0]` must be a string"),
                          ({"set": {"A": 1}}, "`confine.env.set.A` must be a string"),
                          ({"keep": []}, "`confine.env.keep` is not a known field")):
        pol = ws.decision_policy({"allow": True, "confine": {"env": block}})
        p = ws.tether("run", "--policy", pol, "--", "/bin/true", check_rc=77)
        assert needle in one_line(p.stderr), (needle, p.stderr)
    p = ws.tether("run", "--policy", ws.decision_policy({"allow": True, "confine": {"env": "x"}}),
                  "--", "/bin/true", check_rc=77)
    assert "`confine.env` must be an object" in one_line(p.stderr)


if __name__ == "__main__":
    main()
