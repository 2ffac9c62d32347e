/* Unit tests for the pure measurement parsers (measure/parse.c): os-release, the kernel
 * command line, the lockdown mode, the SecureBoot variable and --label arguments. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "../../measure/measure.h"
#include "../../supervisor/core/error.h"
#include "../../supervisor/core/util.h"
#include "test.h"

/* The string member name of obj, or NULL when it is absent or not a string. */
static const char *str_of(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *os_release(const char *text)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    if (f == NULL)
        return NULL;
    cJSON *obj = measure_parse_os_release(f);
    fclose(f);
    return obj;
}

static void test_os_release_typical(void)
{
    cJSON *o = os_release("NAME=\"Fedora Linux\"\n"
                          "ID=fedora\n"
                          "VERSION_ID=40\n"
                          "PRETTY_NAME='Fedora Linux 40 (Forty)'\n"
                          "ANSI_COLOR=\"0;38;2;60;110;180\"\n");
    CHECK(cJSON_IsObject(o), "os-release: an object");
    CHECK_STR(str_of(o, "NAME"), "Fedora Linux", "os-release: double quotes removed, space kept");
    CHECK_STR(str_of(o, "ID"), "fedora", "os-release: unquoted value");
    CHECK_STR(str_of(o, "VERSION_ID"), "40", "os-release: a number stays a string");
    CHECK_STR(str_of(o, "PRETTY_NAME"), "Fedora Linux 40 (Forty)",
              "os-release: single quotes removed");
    CHECK_STR(str_of(o, "ANSI_COLOR"), "0;38;2;60;110;180", "os-release: ; inside quotes kept");
    CHECK(cJSON_GetArraySize(o) == 5, "os-release: exactly five keys (got %d)",
          cJSON_GetArraySize(o));
    cJSON_Delete(o);
}

static void test_os_release_escapes(void)
{
    cJSON *o = os_release("A=\"say \\\"hi\\\"\"\n"      /* A="say \"hi\"" */
                          "B=\"back\\\\slash\"\n"       /* B="back\\slash" */
                          "C=\"\\$HOME and \\`x\\`\"\n" /* C="\$HOME and \`x\`" */
                          "D='no \\\" escapes'\n"       /* D='no \" escapes' */
                          "E=\"it's\"\n"                /* a ' inside " is literal */
                          "F='say \"hi\"'\n");          /* a " inside ' is literal */
    CHECK_STR(str_of(o, "A"), "say \"hi\"", "os-release: \\\" inside double quotes");
    CHECK_STR(str_of(o, "B"), "back\\slash", "os-release: \\\\ inside double quotes");
    CHECK_STR(str_of(o, "C"), "$HOME and `x`", "os-release: \\$ and \\` inside double quotes");
    CHECK_STR(str_of(o, "D"), "no \\\" escapes", "os-release: no escapes inside single quotes");
    CHECK_STR(str_of(o, "E"), "it's", "os-release: ' inside double quotes is literal");
    CHECK_STR(str_of(o, "F"), "say \"hi\"", "os-release: \" inside single quotes is literal");
    cJSON_Delete(o);
}

/* os-release(5) follows the shell: inside double quotes a backslash escapes only $ " \ and `
 * (the comment in parse.c says so too); before any other character it is kept. */
static void test_os_release_backslash_other(void)
{
    cJSON *o = os_release("HOME_URL=\"C:\\temp\\new\"\n"); /* HOME_URL="C:\temp\new" */
    CHECK_STR(str_of(o, "HOME_URL"), "C:\\temp\\new",
              "os-release: a backslash before an ordinary character in double quotes is kept");
    cJSON_Delete(o);
}

static void test_os_release_layout(void)
{
    cJSON *o = os_release("# a comment\n"
                          "\n"
                          "   \n"
                          "   # an indented comment\n"
                          "ID=first\n"
                          "\tVERSION_ID=1\n"
                          "ID=second\n"
                          "#ID=commented\n"
                          "BAD-KEY=x\n"
                          "BAD KEY=x\n"
                          "=nokey\n"
                          "no assignment here\n"
                          "KEY.DOT=x\n"
                          "lower_case_9=ok\n"
                          "WORDS=one two three\n"
                          "CRLF=yes\r\n"
                          "EMPTY=\n"
                          "EMPTYQ=\"\"\n"
                          "LAST=no newline at the end");
    CHECK(cJSON_IsObject(o), "os-release layout: an object");
    CHECK_STR(str_of(o, "ID"), "second", "os-release: the last assignment wins");
    int ids = 0;
    const cJSON *c;
    cJSON_ArrayForEach (c, o)
        if (strcmp(c->string, "ID") == 0)
            ids++;
    CHECK(ids == 1, "os-release: a reassigned key appears once (got %d)", ids);
    CHECK_STR(str_of(o, "VERSION_ID"), "1", "os-release: leading white space before a key");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "BAD-KEY") == NULL, "os-release: key with - skipped");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "BAD KEY") == NULL,
          "os-release: key with a space skipped");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "") == NULL, "os-release: empty key skipped");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "KEY.DOT") == NULL, "os-release: key with . skipped");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "#ID") == NULL, "os-release: comment not a key");
    CHECK_STR(str_of(o, "lower_case_9"), "ok", "os-release: lower case, _ and digits in a key");
    CHECK_STR(str_of(o, "WORDS"), "one", "os-release: an unquoted value ends at white space");
    CHECK_STR(str_of(o, "CRLF"), "yes", "os-release: CR LF line end removed");
    CHECK_STR(str_of(o, "EMPTY"), "", "os-release: empty value");
    CHECK_STR(str_of(o, "EMPTYQ"), "", "os-release: empty quoted value");
    CHECK_STR(str_of(o, "LAST"), "no", "os-release: last line without a newline");
    CHECK(cJSON_GetArraySize(o) == 8, "os-release layout: exactly eight keys (got %d)",
          cJSON_GetArraySize(o));
    cJSON_Delete(o);

    o = os_release("");
    CHECK(cJSON_IsObject(o) && cJSON_GetArraySize(o) == 0, "os-release: empty file, empty object");
    cJSON_Delete(o);
}

static void test_cmdline(void)
{
    cJSON *o = measure_parse_cmdline("BOOT_IMAGE=/vmlinuz-6.8 root=UUID=abcd ro quiet "
                                     "lockdown=integrity\n");
    CHECK(cJSON_IsObject(o), "cmdline: an object");
    CHECK_STR(str_of(o, "BOOT_IMAGE"), "/vmlinuz-6.8", "cmdline: key=value");
    CHECK_STR(str_of(o, "root"), "UUID=abcd", "cmdline: the value keeps later =");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ro")), "cmdline: flag ro is true");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "quiet")), "cmdline: flag quiet");
    CHECK_STR(str_of(o, "lockdown"), "integrity", "cmdline: trailing newline is white space");
    CHECK(cJSON_GetArraySize(o) == 5, "cmdline: five parameters (got %d)", cJSON_GetArraySize(o));
    cJSON_Delete(o);

    o = measure_parse_cmdline("a=\"b c\" dyndbg=\"file x.c +p\" d");
    CHECK_STR(str_of(o, "a"), "b c", "cmdline: quoted value with a space");
    CHECK_STR(str_of(o, "dyndbg"), "file x.c +p", "cmdline: quoted value with two spaces");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "d")), "cmdline: flag after quotes");
    CHECK(cJSON_GetArraySize(o) == 3, "cmdline: three parameters (got %d)", cJSON_GetArraySize(o));
    cJSON_Delete(o);

    o = measure_parse_cmdline("\"x=y z\"");
    CHECK_STR(str_of(o, "x"), "y z", "cmdline: whole parameter quoted");
    cJSON_Delete(o);

    o = measure_parse_cmdline("ro a=1 -- init=/bin/sh single");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ro")), "cmdline: before --");
    CHECK_STR(str_of(o, "a"), "1", "cmdline: value before --");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "init") == NULL, "cmdline: nothing after --");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "single") == NULL, "cmdline: no flag after --");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "--") == NULL, "cmdline: -- itself not a key");
    CHECK(cJSON_GetArraySize(o) == 2, "cmdline: two parameters before -- (got %d)",
          cJSON_GetArraySize(o));
    cJSON_Delete(o);

    o = measure_parse_cmdline("console=tty0 console=ttyS0,115200 x x=2 y=1 y");
    CHECK_STR(str_of(o, "console"), "ttyS0,115200", "cmdline: last occurrence wins");
    CHECK_STR(str_of(o, "x"), "2", "cmdline: value after flag wins");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "y")), "cmdline: flag after value wins");
    CHECK(cJSON_GetArraySize(o) == 3, "cmdline: repeated keys appear once (got %d)",
          cJSON_GetArraySize(o));
    cJSON_Delete(o);

    o = measure_parse_cmdline("empty= =skipped");
    CHECK_STR(str_of(o, "empty"), "", "cmdline: key= gives an empty string");
    CHECK(cJSON_GetArraySize(o) == 1, "cmdline: =value without a key skipped (got %d)",
          cJSON_GetArraySize(o));
    cJSON_Delete(o);

    o = measure_parse_cmdline("");
    CHECK(cJSON_IsObject(o) && cJSON_GetArraySize(o) == 0, "cmdline: empty string, empty object");
    cJSON_Delete(o);

    o = measure_parse_cmdline("   \t \n ");
    CHECK(cJSON_IsObject(o) && cJSON_GetArraySize(o) == 0, "cmdline: only spaces, empty object");
    cJSON_Delete(o);
}

static void test_lockdown(void)
{
    CHECK_STR(measure_parse_lockdown("[none] integrity confidentiality\n"), "none",
              "lockdown: none");
    CHECK_STR(measure_parse_lockdown("none [integrity] confidentiality\n"), "integrity",
              "lockdown: integrity");
    CHECK_STR(measure_parse_lockdown("none integrity [confidentiality]\n"), "confidentiality",
              "lockdown: confidentiality");
    CHECK_STR(measure_parse_lockdown("none integrity [confidentiality]"), "confidentiality",
              "lockdown: without a newline");
    CHECK(measure_parse_lockdown("none integrity confidentiality\n") == NULL,
          "lockdown: no brackets, NULL");
    CHECK(measure_parse_lockdown("") == NULL, "lockdown: empty, NULL");
    CHECK(measure_parse_lockdown("none [integrity confidentiality") == NULL,
          "lockdown: unclosed bracket, NULL");
    CHECK(measure_parse_lockdown("none integrity] [confidentiality") == NULL,
          "lockdown: brackets the wrong way round, NULL");
    CHECK(measure_parse_lockdown("none [paranoid] confidentiality") == NULL,
          "lockdown: unknown mode, NULL");
    CHECK(measure_parse_lockdown("[] none") == NULL, "lockdown: empty brackets, NULL");
    CHECK(measure_parse_lockdown("[integrityx]") == NULL, "lockdown: a longer word, NULL");
    CHECK(measure_parse_lockdown("[integ]") == NULL, "lockdown: a prefix, NULL");
}

static void test_secure_boot(void)
{
    const unsigned char on[] = {0x06, 0x00, 0x00, 0x00, 0x01};
    const unsigned char off[] = {0x06, 0x00, 0x00, 0x00, 0x00};
    const unsigned char two[] = {0x06, 0x00, 0x00, 0x00, 0x02};
    const unsigned char ff[] = {0x06, 0x00, 0x00, 0x00, 0xff};
    const unsigned char six[] = {0x06, 0x00, 0x00, 0x00, 0x01, 0x00};
    CHECK(measure_parse_secure_boot(on, sizeof on) == 1, "secure boot: enabled");
    CHECK(measure_parse_secure_boot(off, sizeof off) == 0, "secure boot: disabled");
    CHECK(measure_parse_secure_boot(two, sizeof two) == -1, "secure boot: value 2, unknown");
    CHECK(measure_parse_secure_boot(ff, sizeof ff) == -1, "secure boot: value 0xff, unknown");
    CHECK(measure_parse_secure_boot(on, 4) == -1, "secure boot: 4 bytes, unknown");
    CHECK(measure_parse_secure_boot(six, sizeof six) == -1, "secure boot: 6 bytes, unknown");
    CHECK(measure_parse_secure_boot(on, 0) == -1, "secure boot: empty, unknown");
}

static void label_ok(const char *kv, const char *want_key, const char *want_value)
{
    char *key = NULL, *value = NULL;
    tether_error_t err = NULL;
    int r = measure_parse_label(kv, &key, &value, &err);
    CHECK(r == 0 && err == NULL, "label `%s` accepted", kv);
    CHECK_STR(key, want_key, "label `%s`: key", kv);
    CHECK_STR(value, want_value, "label `%s`: value", kv);
    free(key);
    free(value);
    error_free(&err);
}

static void label_bad(const char *kv, const char *want_in_msg)
{
    char *key = NULL, *value = NULL;
    tether_error_t err = NULL;
    int r = measure_parse_label(kv, &key, &value, &err);
    CHECK(r < 0, "label `%s` refused", kv);
    CHECK(key == NULL && value == NULL, "label `%s`: nothing returned", kv);
    CHECK(err != NULL && err->msg != NULL && strstr(err->msg, want_in_msg) != NULL,
          "label `%s`: message holds `%s` (got: %s)", kv, want_in_msg,
          err != NULL ? err->msg : "(no error)");
    free(key);
    free(value);
    error_free(&err);
}

static void test_label(void)
{
    label_ok("region=eu-de", "region", "eu-de");
    label_ok("app.kubernetes.io/name=web_1", "app.kubernetes.io/name", "web_1");
    label_ok("A-b.C_9/x=1", "A-b.C_9/x", "1");
    label_ok("k=", "k", "");
    label_ok("k=a=b c", "k", "a=b c");

    label_bad("noequals", "`noequals` is not of the form key=value");
    label_bad("", "is not of the form key=value");
    label_bad("=value", "`=value` is not of the form key=value");
    label_bad("bad key=v", "label key `bad key` may hold only");
    label_bad("k!=v", "label key `k!`");
    label_bad("k\xc3\xa9=v", "label key `k\xc3\xa9`");
    label_bad("k:x=v", "label key `k:x`");
}

static char *names_joined(const char *const env[], size_t n, bool *truncated)
{
    cJSON *names = measure_env_names(env, n, truncated);
    char *s = cJSON_PrintUnformatted(names);
    cJSON_Delete(names);
    return s;
}

static void test_env_names(void)
{
    const char *env[] = {"PATH=/bin", "API_TOKEN=s3cret=x", "LANG=C", "bare", "PATH=/again", ""};
    bool t;
    char *s = names_joined(env, 6, &t);
    CHECK_STR(s, "[\"\",\"API_TOKEN\",\"LANG\",\"PATH\",\"bare\"]",
              "env names: sorted, once each, no values");
    CHECK(!t, "env names: not truncated");
    free(s);

    /* One name over the length limit is left out, and said so; one at it is kept. */
    char longname[MEASURE_ENV_NAME_MAX + 8], atlimit[MEASURE_ENV_NAME_MAX + 8];
    memset(longname, 'L', MEASURE_ENV_NAME_MAX + 1);
    strcpy(longname + MEASURE_ENV_NAME_MAX + 1, "=v");
    memset(atlimit, 'M', MEASURE_ENV_NAME_MAX);
    strcpy(atlimit + MEASURE_ENV_NAME_MAX, "=v");
    const char *env2[] = {longname, atlimit, "A=1"};
    cJSON *names = measure_env_names(env2, 3, &t);
    CHECK(t && cJSON_GetArraySize(names) == 2 &&
              strlen(cJSON_GetArrayItem(names, 1)->valuestring) == MEASURE_ENV_NAME_MAX,
          "env names: a name over %d bytes is left out, truncated is set", MEASURE_ENV_NAME_MAX);
    cJSON_Delete(names);

    /* More names than the cap: the first ones in order are kept, and the flag is set. */
    size_t n = MEASURE_ENV_MAX + 10;
    char **many = calloc(n, sizeof *many);
    for (size_t i = 0; i < n; i++)
        many[i] = xasprintf("V%04zu=x", n - i);
    names = measure_env_names((const char *const *)many, n, &t);
    CHECK(t && cJSON_GetArraySize(names) == MEASURE_ENV_MAX &&
              strcmp(cJSON_GetArrayItem(names, 0)->valuestring, "V0001") == 0,
          "env names: at most %d, the first in order", MEASURE_ENV_MAX);
    cJSON_Delete(names);
    names = measure_env_names((const char *const *)many, MEASURE_ENV_MAX, &t);
    CHECK(!t && cJSON_GetArraySize(names) == MEASURE_ENV_MAX, "env names: exactly the cap fits");
    cJSON_Delete(names);
    for (size_t i = 0; i < n; i++)
        free(many[i]);
    free(many);
}

static bool shebang(const char *line, const char *want_interp, const char *want_arg)
{
    char *interp, *arg;
    int r = measure_parse_shebang(line, strlen(line), &interp, &arg);
    bool ok = want_interp == NULL
                  ? r < 0
                  : r == 0 && strcmp(interp, want_interp) == 0 &&
                        (want_arg == NULL ? arg == NULL : arg && strcmp(arg, want_arg) == 0);
    free(interp);
    free(arg);
    return ok;
}

static void test_shebang(void)
{
    CHECK(shebang("#!/bin/sh\necho hi\n", "/bin/sh", NULL), "shebang: plain");
    CHECK(shebang("#! /usr/bin/env  python3 -u \r\nx", "/usr/bin/env", "python3 -u"),
          "shebang: blanks around, the rest is one argument");
    CHECK(shebang("#!/bin/sh", "/bin/sh", NULL), "shebang: no newline");
    CHECK(shebang("#!\n", NULL, NULL), "shebang: no interpreter");
    CHECK(shebang("#!   \t\n", NULL, NULL), "shebang: blanks only");
    CHECK(shebang("\x7f"
                  "ELF",
                  NULL, NULL),
          "shebang: not a script");
    char long_line[400];
    memset(long_line, 'a', sizeof long_line);
    memcpy(long_line, "#!/", 3);
    long_line[sizeof long_line - 1] = '\0';
    CHECK(shebang(long_line, NULL, NULL), "shebang: a line the kernel would cut is refused");
}

int main(void)
{
    test_shebang();
    test_env_names();
    test_os_release_typical();
    test_os_release_escapes();
    test_os_release_backslash_other();
    test_os_release_layout();
    test_cmdline();
    test_lockdown();
    test_secure_boot();
    test_label();
    return test_done();
}
