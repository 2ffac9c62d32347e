/* Unit tests for the node configuration (supervisor/config.c): defaults, every key of the
 * schema, and errors that name the file and the key. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../supervisor/config.h"
#include "../../supervisor/core/util.h"
#include "test.h"

#define NAME "test.json"

static int parse(const char *text, struct config *cfg, tether_error_t *err)
{
    return config_parse(NAME, text, strlen(text), cfg, err);
}

/* text must be refused with a message holding each of the given pieces (NULL-terminated). */
static void refused(const char *what, const char *text, ...)
{
    struct config cfg;
    tether_error_t err = NULL;
    int r = parse(text, &cfg, &err);
    CHECK(r < 0, "%s: refused", what);
    const char *msg = err != NULL ? err->msg : NULL;
    va_list ap;
    va_start(ap, text);
    for (const char *piece; (piece = va_arg(ap, const char *)) != NULL;)
        CHECK(msg != NULL && strstr(msg, piece) != NULL, "%s: message holds %s (got: %s)", what,
              piece, msg ? msg : "(no error)");
    va_end(ap);
    config_clear(&cfg);
    error_free(&err);
}

#define REFUSED(what, text, ...) refused(what, text, "config `" NAME "`", __VA_ARGS__, NULL)

static void test_defaults(void)
{
    struct config cfg;
    tether_error_t err = NULL;
    CHECK(parse("{}", &cfg, &err) == 0 && err == NULL, "{} parses");
    CHECK_STR(cfg.path, NAME, "default: path is the name given");
    CHECK(cJSON_IsObject(cfg.labels) && cJSON_GetArraySize(cfg.labels) == 0,
          "default: labels is an empty object");
    CHECK(cfg.policy == NULL, "default: no policy file");
    CHECK(cfg.opa.url == NULL, "default: no opa.url");
    CHECK_STR(cfg.opa.path, "tether/decision", "default: opa.path");
    CHECK(cfg.opa.bearer_token_file == NULL, "default: no opa.bearer_token_file");
    CHECK(cfg.opa.ca_file == NULL, "default: no opa.ca_file");
    CHECK(cfg.opa.client_cert == NULL, "default: no opa.client_cert");
    CHECK(cfg.opa.client_key == NULL, "default: no opa.client_key");
    CHECK(cfg.opa.connect_timeout_ms == 500, "default: opa.connect_timeout_ms 500 (got %lld)",
          (long long)cfg.opa.connect_timeout_ms);
    CHECK(cfg.opa.timeout_ms == 2000, "default: opa.timeout_ms 2000 (got %lld)",
          (long long)cfg.opa.timeout_ms);
    CHECK(cfg.opa.max_response_bytes == 1 << 20, "default: opa.max_response_bytes 1 MiB (got %lld)",
          (long long)cfg.opa.max_response_bytes);
    CHECK(cfg.opa.retries == 1, "default: opa.retries 1 (got %lld)", (long long)cfg.opa.retries);
    CHECK(cfg.opa.fail_open == false, "default: opa.fail_open false");
    CHECK(cfg.opa.server_uid == -1, "default: no opa.server_uid");
    CHECK_STR(cfg.audit_path, AUDIT_DEFAULT_PATH, "default: audit.path");
    CHECK_STR(cfg.audit_path, "/var/log/tether/audit.jsonl", "default: audit.path literally");
    CHECK_STR(cfg.keystore, "/etc/tether/keys", "default: keystore");
    CHECK(cJSON_IsArray(cfg.trusted_signers) && cJSON_GetArraySize(cfg.trusted_signers) == 0,
          "default: trusted_signers is an empty array");
    CHECK(cfg.require_sealed == false, "default: require_sealed false");
    CHECK(cfg.hash_cache == true, "default: hash_cache true");
    CHECK(cfg.monitor.grace_s == 5, "default: monitor.grace_s 5 (got %lld)",
          (long long)cfg.monitor.grace_s);
    CHECK(cfg.monitor.fail_grace_s == 30, "default: monitor.fail_grace_s 30 (got %lld)",
          (long long)cfg.monitor.fail_grace_s);
    CHECK(cfg.monitor.heartbeat_s == 0, "default: monitor.heartbeat_s 0 (got %lld)",
          (long long)cfg.monitor.heartbeat_s);
    config_clear(&cfg);
    CHECK(cfg.path == NULL && cfg.labels == NULL && cfg.opa.path == NULL, "config_clear zeroes");

    /* White space around the object is fine. */
    CHECK(parse(" \n\t{ }\r\n ", &cfg, &err) == 0 && err == NULL, "{} with white space parses");
    config_clear(&cfg);
}

static void test_full(void)
{
    static const char text[] = "{\n"
                               "  \"labels\": {\"region\": \"eu-de\", \"datacenter\": \"fra02\","
                               " \"cluster\": \"prod-1\"},\n"
                               "  \"policy\": \"/etc/tether/policy.lua\",\n"
                               "  \"opa\": {\n"
                               "    \"url\": \"https://opa.example:8181\",\n"
                               "    \"path\": \"acme/decision\",\n"
                               "    \"bearer_token_file\": \"/etc/tether/token\",\n"
                               "    \"ca_file\": \"/etc/tether/ca.pem\",\n"
                               "    \"client_cert\": \"/etc/tether/client.pem\",\n"
                               "    \"client_key\": \"/etc/tether/client.key\",\n"
                               "    \"connect_timeout_ms\": 250,\n"
                               "    \"timeout_ms\": 3000,\n"
                               "    \"max_response_bytes\": 65536,\n"
                               "    \"retries\": 3,\n"
                               "    \"fail_open\": true\n"
                               "  },\n"
                               "  \"audit\": {\"path\": \"/tmp/audit.jsonl\"},\n"
                               "  \"keystore\": \"/srv/keys\",\n"
                               "  \"trusted_signers\": [\"/a.pem\", \"/b.pem\"],\n"
                               "  \"require_sealed\": true,\n"
                               "  \"hash_cache\": false,\n"
                               "  \"monitor\": {\"grace_s\": 7, \"fail_grace_s\": 60,"
                               " \"heartbeat_s\": 15}\n"
                               "}\n";
    struct config cfg;
    tether_error_t err = NULL;
    int r = parse(text, &cfg, &err);
    CHECK(r == 0 && err == NULL, "every key accepted (%s)", err ? err->msg : "ok");
    CHECK(cJSON_GetArraySize(cfg.labels) == 3, "labels: three");
    const cJSON *region = cJSON_GetObjectItemCaseSensitive(cfg.labels, "region");
    CHECK_STR(cJSON_IsString(region) ? region->valuestring : NULL, "eu-de", "labels.region");
    const cJSON *cluster = cJSON_GetObjectItemCaseSensitive(cfg.labels, "cluster");
    CHECK_STR(cJSON_IsString(cluster) ? cluster->valuestring : NULL, "prod-1", "labels.cluster");
    CHECK_STR(cfg.policy, "/etc/tether/policy.lua", "policy");
    CHECK_STR(cfg.opa.url, "https://opa.example:8181", "opa.url");
    CHECK_STR(cfg.opa.path, "acme/decision", "opa.path replaces the default");
    CHECK_STR(cfg.opa.bearer_token_file, "/etc/tether/token", "opa.bearer_token_file");
    CHECK_STR(cfg.opa.ca_file, "/etc/tether/ca.pem", "opa.ca_file");
    CHECK_STR(cfg.opa.client_cert, "/etc/tether/client.pem", "opa.client_cert");
    CHECK_STR(cfg.opa.client_key, "/etc/tether/client.key", "opa.client_key");
    CHECK(cfg.opa.connect_timeout_ms == 250, "opa.connect_timeout_ms");
    CHECK(cfg.opa.timeout_ms == 3000, "opa.timeout_ms");
    CHECK(cfg.opa.max_response_bytes == 65536, "opa.max_response_bytes");
    CHECK(cfg.opa.retries == 3, "opa.retries");
    CHECK(cfg.opa.fail_open == true, "opa.fail_open");
    CHECK_STR(cfg.audit_path, "/tmp/audit.jsonl", "audit.path");
    CHECK_STR(cfg.keystore, "/srv/keys", "keystore");
    CHECK(cJSON_GetArraySize(cfg.trusted_signers) == 2, "trusted_signers: two");
    const cJSON *s1 = cJSON_GetArrayItem(cfg.trusted_signers, 1);
    CHECK_STR(cJSON_IsString(s1) ? s1->valuestring : NULL, "/b.pem", "trusted_signers[1]");
    CHECK(cfg.require_sealed == true, "require_sealed");
    CHECK(cfg.hash_cache == false, "hash_cache false");
    CHECK(cfg.monitor.grace_s == 7, "monitor.grace_s");
    CHECK(cfg.monitor.fail_grace_s == 60, "monitor.fail_grace_s");
    CHECK(cfg.monitor.heartbeat_s == 15, "monitor.heartbeat_s");
    config_clear(&cfg);
    error_free(&err);

    /* Empty sections keep the defaults; false and explicit bounds are accepted. */
    r = parse("{\"opa\": {}, \"audit\": {}, \"monitor\": {}, \"labels\": {},"
              " \"trusted_signers\": [], \"require_sealed\": false}",
              &cfg, &err);
    CHECK(r == 0, "empty sections accepted (%s)", err ? err->msg : "ok");
    CHECK_STR(cfg.opa.path, "tether/decision", "empty opa section keeps opa.path");
    CHECK(cfg.opa.timeout_ms == 2000, "empty opa section keeps opa.timeout_ms");
    CHECK_STR(cfg.audit_path, AUDIT_DEFAULT_PATH, "empty audit section keeps audit.path");
    CHECK(cfg.monitor.grace_s == 5, "empty monitor section keeps grace_s");
    CHECK(cfg.require_sealed == false, "require_sealed false");
    config_clear(&cfg);
    error_free(&err);

    r = parse("{\"opa\": {\"connect_timeout_ms\": 1, \"timeout_ms\": 600000,"
              " \"max_response_bytes\": 1024, \"retries\": 0, \"server_uid\": 4294967294},"
              " \"monitor\": {\"grace_s\": 3600, \"fail_grace_s\": 0, \"heartbeat_s\": 86400}}",
              &cfg, &err);
    CHECK(r == 0, "integers at their bounds accepted (%s)", err ? err->msg : "ok");
    CHECK(cfg.opa.connect_timeout_ms == 1 && cfg.opa.timeout_ms == 600000 &&
              cfg.opa.max_response_bytes == 1024 && cfg.opa.retries == 0 &&
              cfg.opa.server_uid == 4294967294,
          "opa bounds stored");
    CHECK(cfg.monitor.grace_s == 3600 && cfg.monitor.fail_grace_s == 0 &&
              cfg.monitor.heartbeat_s == 86400,
          "monitor bounds stored");
    config_clear(&cfg);
    error_free(&err);

    /* An integer written with an exponent or a fraction of zero is still an integer. */
    r = parse("{\"opa\": {\"timeout_ms\": 1e3, \"retries\": 2.0}}", &cfg, &err);
    CHECK(r == 0 && cfg.opa.timeout_ms == 1000 && cfg.opa.retries == 2,
          "1e3 and 2.0 are integers (%s)", err ? err->msg : "ok");
    config_clear(&cfg);
    error_free(&err);
}

static void test_wrong_types(void)
{
    /* One of each kind, at the top level and in each section. */
    REFUSED("policy: number", "{\"policy\": 5}", "`policy` must be a string, not number");
    REFUSED("keystore: null", "{\"keystore\": null}", "`keystore` must be a string, not null");
    REFUSED("opa.url: boolean", "{\"opa\": {\"url\": true}}",
            "`opa.url` must be a string, not boolean");
    REFUSED("opa.client_key: array", "{\"opa\": {\"client_key\": [\"/k\"]}}",
            "`opa.client_key` must be a string, not array");
    REFUSED("audit.path: object", "{\"audit\": {\"path\": {}}}",
            "`audit.path` must be a string, not object");
    REFUSED("opa.timeout_ms: string", "{\"opa\": {\"timeout_ms\": \"2000\"}}",
            "`opa.timeout_ms` must be an integer from 1 to 600000");
    REFUSED("opa.retries: boolean", "{\"opa\": {\"retries\": true}}",
            "`opa.retries` must be an integer from 0 to 10");
    REFUSED("monitor.grace_s: null", "{\"monitor\": {\"grace_s\": null}}",
            "`monitor.grace_s` must be an integer from 0 to 3600");
    REFUSED("opa.fail_open: string", "{\"opa\": {\"fail_open\": \"true\"}}",
            "`opa.fail_open` must be true or false, not string");
    REFUSED("require_sealed: number", "{\"require_sealed\": 1}",
            "`require_sealed` must be true or false, not number");
    REFUSED("hash_cache: string", "{\"hash_cache\": \"no\"}",
            "`hash_cache` must be true or false, not string");
    REFUSED("labels: array", "{\"labels\": [\"a\"]}",
            "`labels` must be an object of strings, not array");
    REFUSED("labels: string", "{\"labels\": \"region=eu\"}",
            "`labels` must be an object of strings, not string");
    REFUSED("trusted_signers: string", "{\"trusted_signers\": \"/a.pem\"}",
            "`trusted_signers` must be an array of strings, not string");
    REFUSED("trusted_signers: object", "{\"trusted_signers\": {}}",
            "`trusted_signers` must be an array of strings, not object");
    REFUSED("opa: string", "{\"opa\": \"http://x\"}", "`opa` must be an object, not string");
    REFUSED("audit: array", "{\"audit\": []}", "`audit` must be an object, not array");
    REFUSED("monitor: number", "{\"monitor\": 5}", "`monitor` must be an object, not number");

    REFUSED("labels with a number", "{\"labels\": {\"region\": \"eu\", \"rack\": 12}}",
            "`labels.rack` must be a string, not number");
    REFUSED("labels with null", "{\"labels\": {\"rack\": null}}",
            "`labels.rack` must be a string, not null");
    REFUSED("labels with an object", "{\"labels\": {\"rack\": {}}}",
            "`labels.rack` must be a string, not object");
    REFUSED("trusted_signers with a number", "{\"trusted_signers\": [\"/a.pem\", 3]}",
            "`trusted_signers` must hold only strings");
    REFUSED("trusted_signers with null", "{\"trusted_signers\": [null]}",
            "`trusted_signers` must hold only strings");
}

static void test_keys(void)
{
    REFUSED("unknown top-level key", "{\"polcy\": \"/p.lua\"}", "unknown key `polcy`");
    REFUSED("unknown key in opa", "{\"opa\": {\"url\": \"http://x\", \"token\": \"t\"}}",
            "unknown key `opa.token`");
    REFUSED("unknown key in audit", "{\"audit\": {\"file\": \"/a\"}}", "unknown key `audit.file`");
    REFUSED("unknown key in monitor", "{\"monitor\": {\"interval_ms\": 5}}",
            "unknown key `monitor.interval_ms`");
    REFUSED("keys are case-sensitive", "{\"Policy\": \"/p.lua\"}", "unknown key `Policy`");
    REFUSED("a section key at the top level", "{\"url\": \"http://x\"}", "unknown key `url`");

    REFUSED("duplicate top-level key", "{\"policy\": \"/a.lua\", \"policy\": \"/b.lua\"}",
            "`policy` is given twice");
    REFUSED("duplicate section", "{\"opa\": {}, \"keystore\": \"/k\", \"opa\": {}}",
            "`opa` is given twice");
    REFUSED("duplicate key in opa", "{\"opa\": {\"retries\": 1, \"retries\": 2}}",
            "`opa.retries` is given twice");
    REFUSED("duplicate key in monitor", "{\"monitor\": {\"grace_s\": 1, \"grace_s\": 1}}",
            "`monitor.grace_s` is given twice");
    /* A label given twice is the same guess between two readers as any other key. */
    REFUSED("duplicate label", "{\"labels\": {\"region\": \"eu-de\", \"region\": \"us-east\"}}",
            "`labels.region` is given twice");
}

static void test_numbers(void)
{
    REFUSED("opa.connect_timeout_ms 0", "{\"opa\": {\"connect_timeout_ms\": 0}}",
            "`opa.connect_timeout_ms` must be an integer from 1 to 600000");
    REFUSED("opa.timeout_ms too large", "{\"opa\": {\"timeout_ms\": 600001}}",
            "`opa.timeout_ms` must be an integer from 1 to 600000");
    REFUSED("opa.timeout_ms negative", "{\"opa\": {\"timeout_ms\": -1}}",
            "`opa.timeout_ms` must be an integer");
    REFUSED("opa.max_response_bytes too small", "{\"opa\": {\"max_response_bytes\": 1023}}",
            "`opa.max_response_bytes` must be an integer from 1024 to 1073741824");
    REFUSED("opa.max_response_bytes too large", "{\"opa\": {\"max_response_bytes\": 1073741825}}",
            "`opa.max_response_bytes` must be an integer from 1024 to 1073741824");
    REFUSED("opa.server_uid -1", "{\"opa\": {\"server_uid\": -1}}",
            "`opa.server_uid` must be an integer from 0 to 4294967294");
    REFUSED("opa.server_uid name", "{\"opa\": {\"server_uid\": \"opa\"}}",
            "`opa.server_uid` must be an integer");
    REFUSED("opa.retries 11", "{\"opa\": {\"retries\": 11}}",
            "`opa.retries` must be an integer from 0 to 10");
    REFUSED("opa.retries -1", "{\"opa\": {\"retries\": -1}}",
            "`opa.retries` must be an integer from 0 to 10");
    REFUSED("monitor.grace_s 3601", "{\"monitor\": {\"grace_s\": 3601}}",
            "`monitor.grace_s` must be an integer from 0 to 3600");
    REFUSED("monitor.fail_grace_s 86401", "{\"monitor\": {\"fail_grace_s\": 86401}}",
            "`monitor.fail_grace_s` must be an integer from 0 to 86400");
    REFUSED("monitor.heartbeat_s -1", "{\"monitor\": {\"heartbeat_s\": -1}}",
            "`monitor.heartbeat_s` must be an integer from 0 to 86400");
    REFUSED("huge number", "{\"opa\": {\"timeout_ms\": 1e300}}", "`opa.timeout_ms`");
    REFUSED("beyond int64", "{\"opa\": {\"retries\": 9223372036854775808}}", "`opa.retries`");

    REFUSED("opa.timeout_ms 1.5", "{\"opa\": {\"timeout_ms\": 1.5}}",
            "`opa.timeout_ms` must be an integer");
    REFUSED("opa.retries 0.5", "{\"opa\": {\"retries\": 0.5}}", "`opa.retries` must be an integer");
    REFUSED("monitor.grace_s 2.25", "{\"monitor\": {\"grace_s\": 2.25}}",
            "`monitor.grace_s` must be an integer");
}

static void test_syntax(void)
{
    REFUSED("empty text", "", "invalid JSON at line 1, column 1");
    REFUSED("only white space", "  \n ", "invalid JSON");
    REFUSED("missing value", "{\n  \"policy\": ,\n}", "invalid JSON at line 2, column 13");
    REFUSED("unterminated object", "{\"policy\": \"/p.lua\"", "invalid JSON at line 1");
    /* cJSON points one byte past a missing member name, so only the line is held here. */
    REFUSED("trailing comma", "{\n\"a\": 1,\n}\n", "invalid JSON at line 3, column ");
    REFUSED("bad literal on line 3", "{\n\"opa\": {\n\"fail_open\": tru\n}}",
            "invalid JSON at line 3");
    REFUSED("trailing garbage", "{} x", "invalid JSON at line 1, column 4");
    REFUSED("second object", "{}\n{}", "invalid JSON at line 2, column 1");
    REFUSED("trailing comma after object", "{\"keystore\": \"/k\"},",
            "invalid JSON at line 1, column 19");

    REFUSED("top level array", "[]", "the top level must be an object, not array");
    REFUSED("top level string", "\"{}\"", "the top level must be an object, not string");
    REFUSED("top level number", "42", "the top level must be an object, not number");
    REFUSED("top level null", "null", "the top level must be an object, not null");
    REFUSED("top level boolean", "true", "the top level must be an object, not boolean");
}

/* Files for config_load live in a fresh directory, removed at the end of test_load(). */
static char dir[] = "/tmp/tether-test-config-XXXXXX";

static char *write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static void test_load(void)
{
    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp: %s", strerror(errno));
        return;
    }
    struct config cfg;
    tether_error_t err = NULL;
    unsetenv("TETHER_CONFIG");

    /* A file that parses. */
    char *good = write_file("good.json", "{\"keystore\": \"/srv/keys\"}\n");
    CHECK(config_load(good, &cfg, &err) == 0, "load: an explicit file (%s)", err ? err->msg : "ok");
    CHECK_STR(cfg.path, good, "load: path is the file read");
    CHECK_STR(cfg.keystore, "/srv/keys", "load: its value read");
    config_clear(&cfg);
    error_free(&err);

    /* Errors from a file name the file. */
    char *bad = write_file("bad.json", "{\"opa\": {\"timeout_ms\": \"x\"}}");
    CHECK(config_load(bad, &cfg, &err) < 0, "load: a bad file refused");
    CHECK(err && strstr(err->msg, bad) && strstr(err->msg, "`opa.timeout_ms`"),
          "load: the message names the file and the key (got: %s)", err ? err->msg : "(none)");
    config_clear(&cfg);
    error_free(&err);

    /* A missing explicit file is an error naming it. */
    char *missing = xasprintf("%s/missing.json", dir);
    CHECK(config_load(missing, &cfg, &err) < 0, "load: a missing explicit file refused");
    CHECK(err && strstr(err->msg, missing) && strstr(err->msg, "No such file"),
          "load: the message names the missing file (got: %s)", err ? err->msg : "(none)");
    config_clear(&cfg);
    error_free(&err);

    /* TETHER_CONFIG names a file to read, and a missing one is an error too. */
    setenv("TETHER_CONFIG", good, 1);
    CHECK(config_load(NULL, &cfg, &err) == 0, "load: TETHER_CONFIG read (%s)",
          err ? err->msg : "ok");
    CHECK_STR(cfg.path, good, "load: TETHER_CONFIG file is the one read");
    CHECK_STR(cfg.keystore, "/srv/keys", "load: TETHER_CONFIG value read");
    config_clear(&cfg);
    error_free(&err);

    setenv("TETHER_CONFIG", missing, 1);
    CHECK(config_load(NULL, &cfg, &err) < 0, "load: TETHER_CONFIG naming a missing file refused");
    CHECK(err && strstr(err->msg, missing),
          "load: the message names the TETHER_CONFIG file (got: %s)", err ? err->msg : "(none)");
    config_clear(&cfg);
    error_free(&err);

    /* An explicit path wins over TETHER_CONFIG. */
    CHECK(config_load(good, &cfg, &err) == 0, "load: explicit path beats TETHER_CONFIG (%s)",
          err ? err->msg : "ok");
    CHECK_STR(cfg.path, good, "load: explicit path read");
    config_clear(&cfg);
    error_free(&err);
    unsetenv("TETHER_CONFIG");

    /* A directory is not a configuration file. */
    CHECK(config_load(dir, &cfg, &err) < 0, "load: a directory refused");
    CHECK(err && strstr(err->msg, dir) && strstr(err->msg, "Is a directory"),
          "load: the message names the directory (got: %s)", err ? err->msg : "(none)");
    config_clear(&cfg);
    error_free(&err);

    unlink(good);
    unlink(bad);
    rmdir(dir);
    free(good);
    free(bad);
    free(missing);
}

/* monitor.cgroup and monitor.systemd_slice (doc/supervision.md, "systemd hosts"). */
static void test_cgroup_keys(void)
{
    struct config cfg;
    tether_error_t err = NULL;
    int r = parse("{}", &cfg, &err);
    CHECK(r == 0 && !cfg.monitor.cgroup_required && cfg.monitor.systemd_slice == NULL,
          "default: a cgroup where one can be had, systemd's default slice");
    config_clear(&cfg);
    r = parse("{\"monitor\": {\"cgroup\": \"required\", \"systemd_slice\": "
              "\"tether-prod_1.slice\"}}",
              &cfg, &err);
    CHECK(r == 0 && cfg.monitor.cgroup_required, "monitor.cgroup \"required\" (%s)",
          err ? err->msg : "ok");
    CHECK_STR(cfg.monitor.systemd_slice, "tether-prod_1.slice", "monitor.systemd_slice");
    config_clear(&cfg);
    r = parse("{\"monitor\": {\"cgroup\": \"auto\"}}", &cfg, &err);
    CHECK(r == 0 && !cfg.monitor.cgroup_required, "monitor.cgroup \"auto\"");
    config_clear(&cfg);
    error_free(&err);

    REFUSED("monitor.cgroup: another word", "{\"monitor\": {\"cgroup\": \"always\"}}",
            "`monitor.cgroup` must be \"auto\" or \"required\", not \"always\"");
    REFUSED("monitor.cgroup: boolean", "{\"monitor\": {\"cgroup\": true}}",
            "`monitor.cgroup` must be a string, not boolean");
    static const char *const bad_slices[] = {".slice",    "tether",     "tether.scope", "a/b.slice",
                                             "a b.slice", "../x.slice", "t\u00e9.slice"};
    for (size_t i = 0; i < sizeof bad_slices / sizeof bad_slices[0]; i++) {
        char *text = xasprintf("{\"monitor\": {\"systemd_slice\": \"%s\"}}", bad_slices[i]);
        REFUSED(bad_slices[i], text, "`monitor.systemd_slice` must be a systemd slice name");
        free(text);
    }
    char long_slice[300];
    memset(long_slice, 'a', sizeof long_slice);
    strcpy(long_slice + 250, ".slice");
    char *text = xasprintf("{\"monitor\": {\"systemd_slice\": \"%s\"}}", long_slice);
    REFUSED("a slice name of 256 bytes", text, "`monitor.systemd_slice`");
    free(text);
}

int main(void)
{
    test_defaults();
    test_full();
    test_wrong_types();
    test_keys();
    test_numbers();
    test_cgroup_keys();
    test_syntax();
    test_load();
    return test_done();
}
