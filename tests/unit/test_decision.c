/* Unit tests for the decision contract (policy/decision.c): what a valid decision is, that
 * anything else is a deny naming the field, that a key value is never shown, and the
 * normalised form that `tether eval` prints. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <string.h>

#include "../../policy/policy.h"
#include "../../supervisor/core/util.h"
#include "test.h"

/* A key value that must never be shown, whatever the decision around it looks like. */
#define SECRET "U0VDUkVULUtFWS1CWVRFUy0xMjM0NTY3OA=="

static void parse_text(const char *text, struct decision *d)
{
    *d = (struct decision){.ttl_s = -1};
    cJSON *doc = cJSON_Parse(text);
    if (doc == NULL)
        printf("# test bug: cannot parse %s\n", text);
    decision_parse(doc, d);
}

static bool reasons_hold(const struct decision *d, const char *needle)
{
    for (size_t i = 0; i < d->n_reasons; i++)
        if (strstr(d->reasons[i], needle) != NULL)
            return true;
    return false;
}

/* text is a valid decision. */
static void valid(const char *what, const char *text, bool allow)
{
    struct decision d;
    parse_text(text, &d);
    bool invalid = reasons_hold(&d, "invalid decision");
    CHECK(d.allow == allow && !invalid && d.doc != NULL, "%s: valid, %s (%s)", what,
          allow ? "allow" : "deny", d.n_reasons ? d.reasons[0] : "no reason");
    decision_clear(&d);
}

/* text is a deny with exactly one reason: "invalid decision: " + why. */
static void invalid(const char *what, const char *text, const char *why)
{
    struct decision d;
    parse_text(text, &d);
    char *want = xasprintf("invalid decision: %s", why);
    CHECK(!d.allow, "%s: deny", what);
    CHECK(d.n_reasons == 1, "%s: one reason (got %zu)", what, d.n_reasons);
    CHECK_STR(d.n_reasons ? d.reasons[0] : NULL, want, "%s: the reason names the field", what);
    CHECK(d.doc == NULL && d.key == NULL && d.confine == NULL && d.monitor == NULL && d.ttl_s == -1,
          "%s: nothing of the document kept", what);
    free(want);
    decision_clear(&d);
}

/* Whether the JSON form of j equals the JSON text want. */
static bool json_equals(const cJSON *j, const char *want)
{
    cJSON *w = cJSON_Parse(want);
    bool same = w != NULL && cJSON_Compare(j, w, true);
    if (!same) {
        char *got = j ? cJSON_PrintUnformatted(j) : NULL;
        printf("#   got:  %s\n#   want: %s\n", got ? got : "(null)", want);
        free(got);
    }
    cJSON_Delete(w);
    return same;
}

static void test_minimal(void)
{
    struct decision d;
    parse_text("{\"allow\": true}", &d);
    CHECK(d.allow, "minimal allow: allow");
    CHECK(d.n_reasons == 0, "minimal allow: no reasons (got %zu)", d.n_reasons);
    CHECK(d.doc != NULL && cJSON_IsTrue(cJSON_GetObjectItem(d.doc, "allow")),
          "minimal allow: the document is kept");
    CHECK(d.key == NULL && d.confine == NULL && d.monitor == NULL, "minimal allow: no sections");
    CHECK(d.ttl_s == -1, "minimal allow: no ttl (got %lld)", (long long)d.ttl_s);
    cJSON *j = decision_to_json(&d);
    CHECK(json_equals(j,
                      "{\"allow\": true, \"reasons\": [], \"key\": null, \"confine\": null,"
                      " \"monitor\": null, \"identity\": null, \"secrets\": [], \"ttl_s\": null}"),
          "minimal allow: normalised form");
    cJSON_Delete(j);
    char *joined = decision_reasons_joined(&d);
    CHECK_STR(joined, "", "minimal allow: no reasons joined is empty");
    free(joined);
    decision_clear(&d);

    /* Explicit nulls read as absent. */
    parse_text("{\"allow\": true, \"reasons\": null, \"key\": null, \"confine\": null,"
               " \"monitor\": null, \"ttl_s\": null}",
               &d);
    CHECK(d.allow && d.n_reasons == 0 && d.key == NULL && d.confine == NULL && d.monitor == NULL &&
              d.ttl_s == -1,
          "nulls are absent fields");
    decision_clear(&d);

    /* An explicit deny keeps its reasons, in order. */
    parse_text("{\"allow\": false, \"reasons\": [\"host not in eu\", \"exe unsigned\"]}", &d);
    CHECK(!d.allow && d.n_reasons == 2, "deny with two reasons");
    CHECK_STR(d.n_reasons > 0 ? d.reasons[0] : NULL, "host not in eu", "deny: first reason");
    CHECK_STR(d.n_reasons > 1 ? d.reasons[1] : NULL, "exe unsigned", "deny: second reason");
    joined = decision_reasons_joined(&d);
    CHECK_STR(joined, "host not in eu; exe unsigned", "reasons joined with \"; \"");
    free(joined);
    decision_clear(&d);

    /* An allow may carry reasons too. */
    parse_text("{\"allow\": true, \"reasons\": [\"one\", \"\", \"three\"]}", &d);
    CHECK(d.allow && d.n_reasons == 3, "allow with three reasons");
    joined = decision_reasons_joined(&d);
    CHECK_STR(joined, "one; ; three", "three reasons joined, the empty one too");
    free(joined);
    decision_clear(&d);
}

static void test_allow(void)
{
    invalid("allow missing", "{\"reasons\": [\"x\"]}", "`allow` must be a boolean, not missing");
    invalid("allow \"true\"", "{\"allow\": \"true\"}", "`allow` must be a boolean, not string");
    invalid("allow 1", "{\"allow\": 1}", "`allow` must be a boolean, not number");
    invalid("allow null", "{\"allow\": null}", "`allow` must be a boolean, not null");
    invalid("allow {}", "{\"allow\": {}}", "`allow` must be a boolean, not object");
    invalid("allow [true]", "{\"allow\": [true]}", "`allow` must be a boolean, not array");
    invalid("Allow, not allow", "{\"Allow\": true}", "`allow` must be a boolean, not missing");
    invalid("not an object", "[{\"allow\": true}]", "the decision must be an object, not array");
    invalid("a bare true", "true", "the decision must be an object, not boolean");

    struct decision d = {.ttl_s = -1};
    decision_parse(NULL, &d);
    CHECK(!d.allow && d.n_reasons == 1 && d.n_reasons &&
              strcmp(d.reasons[0], "invalid decision: the decision must be an object, "
                                   "not missing") == 0,
          "no document at all: deny naming it");
    decision_clear(&d);

    /* A deny without a reason gets one. */
    parse_text("{\"allow\": false}", &d);
    CHECK(!d.allow && d.n_reasons == 1, "deny without reasons: one reason");
    CHECK_STR(d.n_reasons ? d.reasons[0] : NULL, "the policy gave no reason",
              "deny without reasons: the stock reason");
    decision_clear(&d);
    parse_text("{\"allow\": false, \"reasons\": []}", &d);
    CHECK(d.n_reasons == 1 && strcmp(d.reasons[0], "the policy gave no reason") == 0,
          "deny with an empty list: the stock reason");
    decision_clear(&d);
}

static void test_reasons(void)
{
    invalid("reasons a string", "{\"allow\": false, \"reasons\": \"no\"}",
            "`reasons` must be an array of strings, not string");
    invalid("reasons a number", "{\"allow\": true, \"reasons\": 3}",
            "`reasons` must be an array of strings, not number");
    invalid("reasons a non-empty object", "{\"allow\": false, \"reasons\": {\"1\": \"no\"}}",
            "`reasons` must be an array of strings, not object");
    invalid("reasons[1] a number", "{\"allow\": false, \"reasons\": [\"ok\", 5]}",
            "`reasons[1]` must be a string, not number");
    invalid("reasons[0] null", "{\"allow\": false, \"reasons\": [null]}",
            "`reasons[0]` must be a string, not null");
    invalid("reasons[2] an array", "{\"allow\": true, \"reasons\": [\"a\", \"b\", [\"c\"]]}",
            "`reasons[2]` must be a string, not array");

    /* Lua cannot tell {} from []: an empty object is an empty list. */
    struct decision d;
    parse_text("{\"allow\": true, \"reasons\": {}}", &d);
    CHECK(d.allow && d.n_reasons == 0 && !reasons_hold(&d, "invalid"),
          "reasons {} is an empty list (allow)");
    decision_clear(&d);
    parse_text("{\"allow\": false, \"reasons\": {}}", &d);
    CHECK(!d.allow && d.n_reasons == 1 && strcmp(d.reasons[0], "the policy gave no reason") == 0,
          "reasons {} is an empty list (deny)");
    decision_clear(&d);
}

/* Neither the reasons nor the printed decision may show the key value. */
static void secret_hidden(const char *what, const char *text)
{
    struct decision d;
    parse_text(text, &d);
    char *joined = decision_reasons_joined(&d);
    cJSON *j = decision_to_json(&d);
    char *printed = cJSON_PrintUnformatted(j);
    CHECK(strstr(joined, SECRET) == NULL, "%s: key value not in the reasons (%s)", what, joined);
    CHECK(printed != NULL && strstr(printed, SECRET) == NULL,
          "%s: key value not in the printed decision (%s)", what, printed);
    free(printed);
    cJSON_Delete(j);
    free(joined);
    decision_clear(&d);
}

static void test_key(void)
{
    struct decision d;
    parse_text("{\"allow\": true, \"key\": {\"id\": \"payroll-2026\"}}", &d);
    CHECK(d.allow && d.key != NULL, "key with id: allowed, key kept");
    const cJSON *id = d.key ? cJSON_GetObjectItem(d.key, "id") : NULL;
    CHECK_STR(cJSON_IsString(id) ? id->valuestring : NULL, "payroll-2026", "key.id kept");
    cJSON *j = decision_to_json(&d);
    CHECK(json_equals(cJSON_GetObjectItem(j, "key"), "{\"id\": \"payroll-2026\"}"),
          "key with id: printed by its id");
    cJSON_Delete(j);
    decision_clear(&d);

    parse_text("{\"allow\": true, \"key\": {\"value\": \"" SECRET "\"}}", &d);
    CHECK(d.allow && d.key != NULL, "key with value: allowed, key kept");
    const cJSON *value = d.key ? cJSON_GetObjectItem(d.key, "value") : NULL;
    CHECK_STR(cJSON_IsString(value) ? value->valuestring : NULL, "",
              "key.value wiped from the document once decoded");
    CHECK(d.key_value != NULL && d.key_value->len == sizeof "SECRET-KEY-BYTES-12345678" - 1 &&
              memcmp(d.key_value->data, "SECRET-KEY-BYTES-12345678", d.key_value->len) == 0,
          "key.value decoded for the key release");
    j = decision_to_json(&d);
    CHECK(json_equals(cJSON_GetObjectItem(j, "key"), "{\"value\": \"(redacted)\"}"),
          "key with value: printed as (redacted)");
    cJSON_Delete(j);
    decision_clear(&d);

    /* A PEM private key (an encrypted image's) is kept as it is, not base64-decoded. */
#define PEM "-----BEGIN PRIVATE KEY-----\\nMIGH\\n-----END PRIVATE KEY-----\\n"
    parse_text("{\"allow\": true, \"key\": {\"value\": \"" PEM "\"}}", &d);
    value = d.key ? cJSON_GetObjectItem(d.key, "value") : NULL;
    CHECK_STR(cJSON_IsString(value) ? value->valuestring : NULL, "",
              "a PEM key.value wiped from the document");
    static const char pem[] = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
    CHECK(d.key_value != NULL && d.key_value->len == sizeof pem - 1 &&
              memcmp(d.key_value->data, pem, sizeof pem - 1) == 0,
          "a PEM key.value kept byte for byte");
    decision_clear(&d);

    /* Fields beside id are not printed. */
    parse_text("{\"allow\": true, \"key\": {\"id\": \"k1\", \"note\": \"" SECRET "\"}}", &d);
    j = decision_to_json(&d);
    CHECK(json_equals(cJSON_GetObjectItem(j, "key"), "{\"id\": \"k1\"}"),
          "key: only the id is printed");
    cJSON_Delete(j);
    decision_clear(&d);

    invalid("key with id and value",
            "{\"allow\": true, \"key\": {\"id\": \"k1\", \"value\": \"" SECRET "\"}}",
            "`key` must have exactly one of `id` and `value`");
    invalid("key with neither", "{\"allow\": true, \"key\": {}}",
            "`key` must have exactly one of `id` and `value`");
    invalid("key.value a number", "{\"allow\": true, \"key\": {\"value\": 12345}}",
            "`key.value` must be a string (base64, or a PEM private key)");
    invalid("key.value an array", "{\"allow\": true, \"key\": {\"value\": [\"" SECRET "\"]}}",
            "`key.value` must be a string (base64, or a PEM private key)");
    invalid("key.value an object",
            "{\"allow\": true, \"key\": {\"value\": {\"b\": \"" SECRET "\"}}}",
            "`key.value` must be a string (base64, or a PEM private key)");
    invalid("key.id empty", "{\"allow\": true, \"key\": {\"id\": \"\"}}",
            "`key.id` must be a non-empty string");
    invalid("key.id a number", "{\"allow\": true, \"key\": {\"id\": 7}}",
            "`key.id` must be a non-empty string");
    invalid("key a string", "{\"allow\": true, \"key\": \"" SECRET "\"}",
            "`key` must be an object or null, not string");
    invalid("key an array", "{\"allow\": true, \"key\": [\"k1\"]}",
            "`key` must be an object or null, not array");

    secret_hidden("valid key value", "{\"allow\": true, \"key\": {\"value\": \"" SECRET "\"}}");
    secret_hidden("key value on a deny",
                  "{\"allow\": false, \"key\": {\"value\": \"" SECRET "\"}}");
    secret_hidden("key value beside an id",
                  "{\"allow\": true, \"key\": {\"id\": \"k\", \"value\": \"" SECRET "\"}}");
    secret_hidden("key value in an array",
                  "{\"allow\": true, \"key\": {\"value\": [\"" SECRET "\"]}}");
    secret_hidden("key value in an object",
                  "{\"allow\": true, \"key\": {\"value\": {\"" SECRET "\": 1}}}");
    secret_hidden("key a bare string", "{\"allow\": true, \"key\": \"" SECRET "\"}");
    secret_hidden("key value with a bad monitor",
                  "{\"allow\": true, \"key\": {\"value\": \"" SECRET "\"},"
                  " \"monitor\": {\"interval_ms\": 0}}");
    secret_hidden("key value with a bad ttl",
                  "{\"allow\": true, \"key\": {\"value\": \"" SECRET "\"}, \"ttl_s\": -5}");
}

static void test_confine(void)
{
    invalid("confine a string", "{\"allow\": true, \"confine\": \"strict\"}",
            "`confine` must be an object, not string");
    invalid("confine an array", "{\"allow\": true, \"confine\": []}",
            "`confine` must be an object, not array");
    invalid("confine true", "{\"allow\": true, \"confine\": true}",
            "`confine` must be an object, not boolean");

    struct decision d;
    parse_text("{\"allow\": true, \"confine\": {\"no_new_privs\": true, \"capabilities\": []}}",
               &d);
    CHECK(d.allow && d.confine != NULL &&
              cJSON_IsTrue(cJSON_GetObjectItem(d.confine, "no_new_privs")),
          "confine object kept");
    decision_clear(&d);
}

static void test_monitor(void)
{
    valid("interval_ms 1", "{\"allow\": true, \"monitor\": {\"interval_ms\": 1}}", true);
    valid("interval_ms 86400000", "{\"allow\": true, \"monitor\": {\"interval_ms\": 86400000}}",
          true);
    invalid("interval_ms 0", "{\"allow\": true, \"monitor\": {\"interval_ms\": 0}}",
            "`monitor.interval_ms` must be an integer from 1 to 86400000");
    invalid("interval_ms 86400001", "{\"allow\": true, \"monitor\": {\"interval_ms\": 86400001}}",
            "`monitor.interval_ms` must be an integer from 1 to 86400000");
    invalid("interval_ms -5", "{\"allow\": true, \"monitor\": {\"interval_ms\": -5}}",
            "`monitor.interval_ms` must be an integer from 1 to 86400000");
    invalid("interval_ms 2.5", "{\"allow\": true, \"monitor\": {\"interval_ms\": 2.5}}",
            "`monitor.interval_ms` must be an integer from 1 to 86400000");
    invalid("interval_ms a string", "{\"allow\": true, \"monitor\": {\"interval_ms\": \"100\"}}",
            "`monitor.interval_ms` must be an integer from 1 to 86400000");

    static const char *const actions[] = {"log", "kill", "stop", "restart"};
    for (size_t i = 0; i < 4; i++) {
        char *text =
            xasprintf("{\"allow\": true, \"monitor\": {\"on_drift\": \"%s\"}}", actions[i]);
        valid(actions[i], text, true);
        free(text);
    }
    invalid("on_drift unknown", "{\"allow\": true, \"monitor\": {\"on_drift\": \"explode\"}}",
            "`monitor.on_drift` must be one of log, kill, stop, restart");
    invalid("on_drift upper case", "{\"allow\": true, \"monitor\": {\"on_drift\": \"KILL\"}}",
            "`monitor.on_drift` must be one of log, kill, stop, restart");
    invalid("on_drift empty", "{\"allow\": true, \"monitor\": {\"on_drift\": \"\"}}",
            "`monitor.on_drift` must be one of log, kill, stop, restart");
    invalid("on_drift a number", "{\"allow\": true, \"monitor\": {\"on_drift\": 1}}",
            "`monitor.on_drift` must be one of log, kill, stop, restart");

    valid("watch absolute paths",
          "{\"allow\": true, \"monitor\": {\"watch\": [\"/etc/passwd\", \"/usr/bin\"]}}", true);
    valid("watch empty array", "{\"allow\": true, \"monitor\": {\"watch\": []}}", true);
    valid("watch empty object", "{\"allow\": true, \"monitor\": {\"watch\": {}}}", true);
    invalid("watch a relative path",
            "{\"allow\": true, \"monitor\": {\"watch\": [\"/etc\", \"etc/passwd\"]}}",
            "`monitor.watch` must hold absolute paths");
    invalid("watch ./", "{\"allow\": true, \"monitor\": {\"watch\": [\"./x\"]}}",
            "`monitor.watch` must hold absolute paths");
    invalid("watch an empty path", "{\"allow\": true, \"monitor\": {\"watch\": [\"\"]}}",
            "`monitor.watch` must hold absolute paths");
    invalid("watch a number", "{\"allow\": true, \"monitor\": {\"watch\": [5]}}",
            "`monitor.watch` must hold absolute paths");
    invalid("watch a string", "{\"allow\": true, \"monitor\": {\"watch\": \"/etc\"}}",
            "`monitor.watch` must be an array of paths");
    invalid("watch a non-empty object",
            "{\"allow\": true, \"monitor\": {\"watch\": {\"a\": \"/etc\"}}}",
            "`monitor.watch` must be an array of paths");

    invalid("unknown monitor field", "{\"allow\": true, \"monitor\": {\"interval\": 100}}",
            "`monitor.interval` is not a known field");
    invalid("monitor a string", "{\"allow\": true, \"monitor\": \"kill\"}",
            "`monitor` must be an object, not string");
    invalid("monitor an array", "{\"allow\": true, \"monitor\": []}",
            "`monitor` must be an object, not array");

    struct decision d;
    parse_text("{\"allow\": true, \"monitor\": {\"interval_ms\": 500, \"on_drift\": \"stop\","
               " \"watch\": [\"/srv\"]}}",
               &d);
    CHECK(d.allow && d.monitor != NULL &&
              cJSON_GetObjectItem(d.monitor, "interval_ms")->valuedouble == 500,
          "monitor object kept");
    decision_clear(&d);
}

static void test_ttl(void)
{
    struct decision d;
    parse_text("{\"allow\": true, \"ttl_s\": 3600}", &d);
    CHECK(d.allow && d.ttl_s == 3600, "ttl_s 3600 (got %lld)", (long long)d.ttl_s);
    decision_clear(&d);
    parse_text("{\"allow\": true, \"ttl_s\": 0}", &d);
    CHECK(d.allow && d.ttl_s == 0, "ttl_s 0 (got %lld)", (long long)d.ttl_s);
    decision_clear(&d);
    parse_text("{\"allow\": true, \"ttl_s\": 2147483647}", &d);
    CHECK(d.allow && d.ttl_s == 2147483647, "ttl_s INT32_MAX (got %lld)", (long long)d.ttl_s);
    decision_clear(&d);

    invalid("ttl_s negative", "{\"allow\": true, \"ttl_s\": -1}",
            "`ttl_s` must be a non-negative integer");
    invalid("ttl_s a float", "{\"allow\": true, \"ttl_s\": 1.5}",
            "`ttl_s` must be a non-negative integer");
    invalid("ttl_s a string", "{\"allow\": true, \"ttl_s\": \"60\"}",
            "`ttl_s` must be a non-negative integer");
    invalid("ttl_s a boolean", "{\"allow\": true, \"ttl_s\": true}",
            "`ttl_s` must be a non-negative integer");
    invalid("ttl_s beyond INT32_MAX", "{\"allow\": true, \"ttl_s\": 2147483648}",
            "`ttl_s` must be a non-negative integer");
    invalid("identity without an audience", "{\"allow\": true, \"identity\": {\"ttl_s\": 60}}",
            "`identity.audience` is required");
    invalid("identity with a short ttl",
            "{\"allow\": true, \"identity\": {\"audience\": \"a\", \"ttl_s\": 5}}",
            "`identity.ttl_s` must be an integer from 10 to 86400");
    invalid("identity with an unknown field",
            "{\"allow\": true, \"identity\": {\"audience\": \"a\", \"scope\": 1}}",
            "`identity.scope` is not a known field");
    invalid("a secret named by a path",
            "{\"allow\": true, \"secrets\": [{\"name\": \"../etc\", \"id\": \"x\"}]}",
            "`secrets[0].name` must be a file name (letters, digits, ._-; at most 64 bytes, not "
            "starting with .)");
    invalid(
        "a secret with both id and value",
        "{\"allow\": true, \"secrets\": [{\"name\": \"a\", \"id\": \"x\", \"value\": \"eA==\"}]}",
        "`secrets[0]` must be {name, id} or {name, value}");
    invalid("a secret given twice",
            "{\"allow\": true, \"secrets\": [{\"name\": \"a\", \"id\": \"x\"},"
            " {\"name\": \"a\", \"id\": \"y\"}]}",
            "`secrets[1].name` `a` is given twice");
    invalid("a secret value that is not base64",
            "{\"allow\": true, \"secrets\": [{\"name\": \"a\", \"value\": \"!!\"}]}",
            "`secrets[0].value` must be base64 of at most 65536 bytes");
}

static void test_to_json(void)
{
    static const char full[] =
        "{\"allow\": true, \"reasons\": [\"in eu\", \"signed\"], \"key\": {\"id\": \"k1\"},"
        " \"confine\": {\"capabilities\": [\"CAP_NET_BIND_SERVICE\"], \"no_new_privs\": true,"
        " \"user\": {\"uid\": 1000, \"gid\": 1000}, \"seccomp\": \"default\","
        " \"namespaces\": [\"net\"], \"rlimits\": {\"nofile\": 1024}},"
        " \"monitor\": {\"interval_ms\": 1000, \"on_drift\": \"kill\", \"watch\": [\"/srv\"]},"
        " \"identity\": {\"audience\": \"vault\", \"ttl_s\": 60},"
        " \"secrets\": [{\"name\": \"db\", \"id\": \"db-prod\"}], \"ttl_s\": 300}";
    struct decision d, again;
    parse_text(full, &d);
    CHECK(d.allow && d.n_reasons == 2, "full decision: valid (%s)",
          d.n_reasons ? d.reasons[0] : "no reason");
    cJSON *j = decision_to_json(&d);
    CHECK(json_equals(j, full), "full decision: the normal form equals the document");

    /* The normal form is itself a decision with the same normal form. */
    char *text = cJSON_PrintUnformatted(j);
    parse_text(text, &again);
    cJSON *j2 = decision_to_json(&again);
    CHECK(cJSON_Compare(j, j2, true), "full decision: round trip through the normal form");
    CHECK(again.ttl_s == 300 && again.allow && again.n_reasons == 2,
          "full decision: round trip keeps ttl_s, allow, reasons");
    cJSON_Delete(j2);
    decision_clear(&again);
    free(text);
    cJSON_Delete(j);
    decision_clear(&d);

    /* A minimal deny, normalised, round trips too. */
    parse_text("{\"allow\": false, \"reasons\": {}}", &d);
    j = decision_to_json(&d);
    CHECK(json_equals(j, "{\"allow\": false, \"reasons\": [\"the policy gave no reason\"],"
                         " \"key\": null, \"confine\": null, \"monitor\": null, \"identity\": null,"
                         " \"secrets\": [], \"ttl_s\": null}"),
          "deny without reasons: normal form");
    text = cJSON_PrintUnformatted(j);
    parse_text(text, &again);
    j2 = decision_to_json(&again);
    CHECK(cJSON_Compare(j, j2, true), "deny without reasons: round trip");
    cJSON_Delete(j2);
    decision_clear(&again);
    free(text);
    cJSON_Delete(j);
    decision_clear(&d);

    /* An invalid decision prints as the deny it became. */
    parse_text("{\"allow\": true, \"ttl_s\": \"soon\", \"confine\": {}}", &d);
    j = decision_to_json(&d);
    CHECK(json_equals(j, "{\"allow\": false, \"reasons\": [\"invalid decision: `ttl_s` must be a"
                         " non-negative integer\"], \"key\": null, \"confine\": null,"
                         " \"monitor\": null, \"identity\": null, \"secrets\": [],"
                         " \"ttl_s\": null}"),
          "invalid decision: normal form of the deny");
    cJSON_Delete(j);
    decision_clear(&d);

    /* decision_deny replaces whatever was there. */
    parse_text(full, &d);
    decision_deny(&d, "policy error: %s at line %d", "boom", 3);
    CHECK(!d.allow && d.n_reasons == 1 && d.doc == NULL && d.key == NULL && d.ttl_s == -1,
          "decision_deny: a plain deny");
    char *joined = decision_reasons_joined(&d);
    CHECK_STR(joined, "policy error: boom at line 3", "decision_deny: its one reason");
    free(joined);
    decision_clear(&d);

    /* decision_parse over an earlier decision replaces it. */
    parse_text(full, &d);
    decision_parse(cJSON_Parse("{\"allow\": false, \"reasons\": [\"later\"]}"), &d);
    CHECK(!d.allow && d.n_reasons == 1 && strcmp(d.reasons[0], "later") == 0 && d.key == NULL &&
              d.ttl_s == -1,
          "decision_parse replaces an earlier decision");
    decision_clear(&d);
}

int main(void)
{
    test_minimal();
    test_allow();
    test_reasons();
    test_key();
    test_confine();
    test_monitor();
    test_ttl();
    test_to_json();
    return test_done();
}
