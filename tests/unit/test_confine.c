/* The confine block parser, and the /proc/PID/status parser that reads confinement back. */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>

#include "../../measure/measure.h"
#include "../../policy/confine.h"
#include "../../supervisor/confine.h"
#include "../../supervisor/core/util.h"
#include "test.h"

static char *parse(const char *text, struct confine *c)
{
    cJSON *j = cJSON_Parse(text);
    char *why = confine_parse(j, c);
    cJSON_Delete(j);
    return why;
}

static void refused(const char *text, const char *needle)
{
    struct confine c;
    char *why = parse(text, &c);
    CHECK(why != NULL && strstr(why, needle) != NULL, "%s is refused: %s", text,
          why ? why : "(accepted)");
    free(why);
    confine_clear(&c);
}

/* The filtered environment as one string, "A=1 B=2", for comparing. */
static char *env_joined(const char *block, char *const envp[])
{
    struct confine c;
    char *why = parse(block, &c);
    if (why != NULL) {
        free(why);
        return xstrdup("(refused)");
    }
    char **out = confine_env_filter(&c, envp);
    char *s = xstrdup("");
    for (size_t i = 0; out[i] != NULL; i++) {
        char *t = xasprintf("%s%s%s", s, i ? " " : "", out[i]);
        free(s);
        s = t;
    }
    if (out != envp)
        free(out);
    confine_clear(&c);
    return s;
}

static void test_env(void)
{
    char *envp[] = {"PATH=/evil", "LD_PRELOAD=/tmp/x.so", "LANG=C",     "bare",
                    "=novar",     "LANG=second",          "HOME=/root", NULL};
    struct confine c;
    CHECK(confine_parse(NULL, &c) == NULL && confine_env_filter(&c, envp) == envp,
          "env: no block passes the environment as it is");
    char *s = env_joined("{\"seccomp\": \"unconfined\"}", envp);
    CHECK_STR(s, "PATH=/evil LD_PRELOAD=/tmp/x.so LANG=C bare =novar LANG=second HOME=/root",
              "env: a block without env passes the environment as it is");
    free(s);
    s = env_joined("{\"env\": {}}", envp);
    CHECK_STR(s, "HOME=/root LANG=C LD_PRELOAD=/tmp/x.so PATH=/evil",
              "env: an empty block keeps variables, each name once (the first), drops the rest");
    free(s);
    s = env_joined("{\"env\": {\"clear\": true}}", envp);
    CHECK_STR(s, "", "env: clear leaves nothing");
    free(s);
    s = env_joined("{\"env\": {\"clear\": true, \"allow\": [\"PATH\", \"LANG\", \"NOPE\"], "
                   "\"set\": {\"PATH\": \"/usr/bin:/bin\", \"X\": \"\"}}}",
                   envp);
    CHECK_STR(
        s, "LANG=C PATH=/usr/bin:/bin X=", "env: clear keeps allowed names, set replaces and adds");
    free(s);
    s = env_joined("{\"env\": {\"set\": {\"LD_PRELOAD\": \"\"}}}", envp);
    CHECK_STR(s, "HOME=/root LANG=C PATH=/evil LD_PRELOAD=",
              "env: set without clear overrides one name, keeps the rest");
    free(s);
    s = env_joined("{\"env\": {\"clear\": true, \"allow\": [\"PAT\"]}}", envp);
    CHECK_STR(s, "", "env: a name allows itself, not a longer one");
    free(s);

    refused("{\"env\": []}", "`confine.env` must be an object");
    refused("{\"env\": {\"clear\": 1}}", "`confine.env.clear` must be a boolean");
    refused("{\"env\": {\"allow\": [\"PATH\"]}}", "needs `confine.env.clear = true`");
    refused("{\"env\": {\"clear\": true, \"allow\": \"PATH\"}}",
            "`confine.env.allow` must be an array of strings");
    refused("{\"env\": {\"clear\": true, \"allow\": [\"A=B\"]}}", "`A=B` is not a variable name");
    refused("{\"env\": {\"set\": {\"A\": 1}}}", "`confine.env.set.A` must be a string");
    refused("{\"env\": {\"set\": {\"A\": \"1\", \"A\": \"2\"}}}",
            "`confine.env.set.A` is given twice");
    refused("{\"env\": {\"set\": [\"A=1\"]}}", "`confine.env.set` must be an object of strings");
    refused("{\"env\": {\"unset\": [\"A\"]}}", "`confine.env.unset` is not a known field");
}

int main(void)
{
    struct confine c;

    test_env();

    /* No block: no_new_privs and core 0, nothing else. */
    CHECK(confine_parse(NULL, &c) == NULL, "no block parses");
    CHECK(!c.given && c.no_new_privs && !c.caps_given && !c.user_given &&
              c.seccomp == CONFINE_SECCOMP_NONE && c.namespaces == 0,
          "no block: only no_new_privs");
    CHECK(c.rlimits[RL_CORE].set && c.rlimits[RL_CORE].soft == 0 && c.rlimits[RL_CORE].hard == 0,
          "no block: core 0");
    CHECK(!c.rlimits[RL_NOFILE].set, "no block: other limits untouched");
    confine_clear(&c);

    /* An empty block: the default filter, since unconfined must be asked for. */
    CHECK(parse("{}", &c) == NULL && c.given && c.seccomp == CONFINE_SECCOMP_DEFAULT &&
              c.no_new_privs,
          "empty block: default seccomp, no_new_privs");
    confine_clear(&c);

    /* Capability names in both spellings, any case. */
    CHECK(confine_cap_from_name("CAP_NET_BIND_SERVICE") == 10 &&
              confine_cap_from_name("net_bind_service") == 10 &&
              confine_cap_from_name("Cap_Kill") == 5 && confine_cap_from_name("sys_admin") == 21,
          "capability names resolve");
    CHECK(confine_cap_from_name("cap_7") < 0 && confine_cap_from_name("7") < 0 &&
              confine_cap_from_name("") < 0 && confine_cap_from_name("cap_") < 0 &&
              confine_cap_from_name("CAP_FLY") < 0,
          "numbers and unknown names are not capabilities");
    CHECK(parse("{\"capabilities\":[\"CAP_KILL\",\"net_bind_service\"]}", &c) == NULL &&
              c.caps_given && c.caps == ((1u << 5) | (1u << 10)),
          "capability list");
    confine_clear(&c);
    CHECK(parse("{\"capabilities\":{}}", &c) == NULL && c.caps_given && c.caps == 0,
          "an empty Lua table is an empty list");
    confine_clear(&c);

    /* Full block. */
    CHECK(parse("{\"user\":{\"uid\":1000,\"gid\":100},\"no_new_privs\":false,\"namespaces\":["
                "\"pid\",\"net\"],"
                "\"seccomp\":{\"default_action\":\"errno\",\"syscalls\":{\"allow\":[\"read\","
                "\"write\"],"
                "\"kill\":[\"ptrace\"]}},\"rlimits\":{\"nofile\":64,\"nproc\":{\"soft\":5,\"hard\":"
                "\"unlimited\"}}}",
                &c) == NULL,
          "a full block parses");
    CHECK(c.user_given && c.uid == 1000 && c.gid == 100 && !c.no_new_privs, "user, no_new_privs");
    CHECK(c.namespaces == (CLONE_NEWPID | CLONE_NEWNET), "namespaces");
    CHECK(c.seccomp == CONFINE_SECCOMP_CUSTOM && c.seccomp_default == CONFINE_ACT_ERRNO &&
              c.n_rules == 3,
          "custom filter with three rules");
    CHECK(c.rlimits[RL_NOFILE].soft == 64 && c.rlimits[RL_NOFILE].hard == 64, "nofile");
    CHECK(c.rlimits[RL_NPROC].soft == 5 && c.rlimits[RL_NPROC].hard == UINT64_MAX,
          "nproc soft/hard");
    CHECK(c.rlimits[RL_CORE].set && c.rlimits[RL_CORE].hard == 0, "core still 0");
    confine_clear(&c);
    CHECK(parse("{\"seccomp\":\"unconfined\"}", &c) == NULL &&
              c.seccomp == CONFINE_SECCOMP_UNCONFINED,
          "unconfined when asked");
    confine_clear(&c);

    /* Refusals name the field and every unknown name. */
    refused("[]", "`confine` must be an object");
    refused("{\"capabilities\":[\"CAP_FLY\",\"kill\",\"cap_7\"]}",
            "unknown capability `CAP_FLY`, `cap_7`");
    refused("{\"capabilities\":\"CAP_KILL\"}", "`confine.capabilities` must be an array");
    refused("{\"capabilities\":[5]}", "`confine.capabilities[0]` must be a string");
    refused("{\"user\":{\"uid\":1}}", "`confine.user.gid`");
    refused("{\"user\":{\"uid\":1.5,\"gid\":1}}", "`confine.user.uid`");
    refused("{\"user\":{\"uid\":1,\"gid\":1,\"name\":\"x\"}}", "`confine.user.name`");
    refused("{\"user\":{\"uid\":4294967295,\"gid\":1}}", "`confine.user.uid`");
    refused("{\"no_new_privs\":1}", "`confine.no_new_privs`");
    refused("{\"seccomp\":\"strict\"}", "not \"strict\"");
    refused("{\"seccomp\":true}", "`confine.seccomp` must be a string or an object");
    refused("{\"seccomp\":{\"syscalls\":{}}}", "default_action");
    refused("{\"seccomp\":{\"default_action\":\"allow\",\"extra\":1}}", "`confine.seccomp.extra`");
    refused("{\"seccomp\":{\"default_action\":\"allow\",\"syscalls\":{\"trap\":[\"read\"]}}}",
            "`confine.seccomp.syscalls.trap`");
    refused("{\"seccomp\":{\"default_action\":\"allow\",\"syscalls\":{\"errno\":[\"read\","
            "\"nosuch\",\"nosuch2\"]}}}",
            "unknown system call `nosuch`, `nosuch2`");
    refused("{\"seccomp\":{\"default_action\":\"allow\",\"syscalls\":{\"errno\":[\"read\"],"
            "\"kill\":[\"read\"]}}}",
            "`read` is given two actions");
    refused("{\"namespaces\":[\"pid\",\"user\",\"time\"]}", "unknown namespace `user`, `time`");
    refused("{\"rlimits\":{\"stack\":1}}", "`confine.rlimits.stack`");
    refused("{\"rlimits\":{\"nofile\":-1}}", "`confine.rlimits.nofile`");
    refused("{\"rlimits\":{\"nofile\":{\"soft\":1}}}", "exactly `soft` and `hard`");
    refused("{\"rlimits\":{\"nofile\":{\"soft\":9,\"hard\":3}}}", "soft is above hard");
    refused("{\"rlimits\":[]}", "`confine.rlimits` must be an object");
    refused("{\"mystery\":1}", "`confine.mystery` is not a known field");

    /* /proc/PID/status */
    const char status[] =
        "Name:\tprobe\nPPid:\t42\nUid:\t1000\t65534\t1000\t1000\nGid:\t5\t6\t5\t5\n"
        "CapInh:\t0000000000000000\nCapPrm:\t0000000000000420\nCapEff:\t0000000000000400\n"
        "CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000400\nNoNewPrivs:\t1\nSeccomp:\t2\n";
    FILE *f = fmemopen((void *)status, sizeof status - 1, "r");
    cJSON *st = measure_parse_proc_status(f);
    fclose(f);
    char *printed = json_print(st);
    CHECK(strstr(printed, "\"ppid\":42") && strstr(printed, "\"uid\":65534") &&
              strstr(printed, "\"gid\":6"),
          "ppid and effective ids: %s", printed);
    CHECK(strstr(printed, "\"effective\":[\"CAP_NET_BIND_SERVICE\"]") &&
              strstr(printed, "\"permitted\":[\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"]") &&
              strstr(printed, "\"inheritable\":[]") &&
              strstr(printed, "\"ambient\":[\"CAP_NET_BIND_SERVICE\"]"),
          "capability sets by name");
    CHECK(strstr(printed, "\"CAP_40\"") != NULL ||
              strstr(printed, "CAP_CHECKPOINT_RESTORE") != NULL,
          "every bit of the bounding set is named");
    CHECK(strstr(printed, "\"seccomp\":2") && strstr(printed, "\"no_new_privs\":true"),
          "seccomp, no_new_privs");
    free(printed);
    cJSON_Delete(st);
    const char partial[] = "Name:\tx\nSeccomp:\tbogus\n";
    f = fmemopen((void *)partial, sizeof partial - 1, "r");
    st = measure_parse_proc_status(f);
    fclose(f);
    printed = json_print(st);
    CHECK(strstr(printed, "\"seccomp\":null") && strstr(printed, "\"ppid\":null") &&
              strstr(printed, "\"effective\":null"),
          "missing or malformed fields are null: %s", printed);
    free(printed);
    cJSON_Delete(st);
    return test_done();
}
