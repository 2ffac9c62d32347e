/* Secret memory and key release: locked, non-dumpable, decoded exactly, never quoted. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/prctl.h>

#include "../../supervisor/core/secret.h"
#include "../../supervisor/core/util.h"
#include "../../supervisor/key.h"
#include "test.h"

/* The "Locked:" size, in kB, of the mapping that holds addr. */
static long locked_kb(const void *addr)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    long kb = -1;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, ':') - line > 8)
            in = (unsigned long)addr >= lo && (unsigned long)addr < hi;
        else if (in && sscanf(line, "Locked: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

static bool has_vmflag(const void *addr, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false, found = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, ':') - line > 8)
            in = (unsigned long)addr >= lo && (unsigned long)addr < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0)
            found = strstr(line, flag) != NULL;
    }
    fclose(f);
    return found;
}

static void key_case(const char *value, int want_rc, const char *needle)
{
    char *text = xasprintf("{\"allow\":true,\"key\":{\"value\":\"%s\"}}", value);
    struct decision d = {.ttl_s = -1};
    decision_parse(cJSON_Parse(text), &d);
    struct secret *key = NULL;
    tether_error_t err = NULL;
    int rc = key_from_decision(&d, &key, &err);
    CHECK(rc == want_rc && (rc < 0 || (key && key->len == KEY_BYTES)) &&
              (rc == 0 || (strstr(err->msg, needle) && !strstr(err->msg, value))),
          "key `%.12s...`: %s", value, rc < 0 ? err->msg : "released");
    secret_free(key);
    error_free(&err);
    decision_clear(&d);
    free(text);
}

int main(void)
{
    struct secret *s = NULL;
    tether_error_t err = NULL;
    CHECK(prctl(PR_GET_DUMPABLE) == 1, "dumpable before any secret");
    CHECK(secret_new(32, &s, &err) == 0 && s->len == 32, "a secret is allocated");
    CHECK(prctl(PR_GET_DUMPABLE) == 0, "not dumpable while a secret lives");
    CHECK(locked_kb(s->data) >= 4, "its page is locked in RAM (%ld kB)", locked_kb(s->data));
    CHECK(has_vmflag(s->data, "dd"), "and excluded from core dumps (VmFlags dd)");
    CHECK(has_vmflag(s->data, "wf"), "and wiped in a forked child (VmFlags wf)");
    CHECK(secret_live() == 1, "one secret alive");
    secret_free(s);
    CHECK(secret_live() == 0, "freed");

    CHECK(secret_from_base64("aGVsbG8=", &s, &err) == 0 && s->len == 5 &&
              memcmp(s->data, "hello", 5) == 0,
          "base64 with one pad");
    secret_free(s);
    CHECK(secret_from_base64("aGVsbG8h", &s, &err) == 0 && s->len == 6, "base64 without pad");
    secret_free(s);
    CHECK(secret_from_base64("aGk=", &s, &err) == 0 && s->len == 2, "short");
    secret_free(s);
    CHECK(secret_from_base64("YQ==", &s, &err) == 0 && s->len == 1 && s->data[0] == 'a',
          "two pads");
    secret_free(s);
    const char *bad[] = {"", "abc", "ab=c", "a===", "ab c", "abc\t", "=abc", "ab==cdef", "****"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = NULL;
        int rc = secret_from_base64(bad[i], &s, &err);
        CHECK(rc < 0 && s == NULL && secret_live() == 0, "`%s` is refused (%s)", bad[i],
              err ? err->msg : "");
        error_free(&err);
    }

    key_case("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=", 0, NULL);
    key_case("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeA==", -1, "31 bytes, not 32");
    key_case("c2VjcmV0LXZhbHVlLXRoYXQtaXMtdG9vLWxvbmctdG8tYmUtYS1rZXk=", -1, "not 32");

    /* Not base64: the decision itself is invalid, a deny that names the field, not the value. */
    const char *junk = "not*base64*at*all*but*long*enough*to*look*like*a*key=";
    char *text = xasprintf("{\"allow\":true,\"key\":{\"value\":\"%s\"}}", junk);
    struct decision bad_d = {.ttl_s = -1};
    decision_parse(cJSON_Parse(text), &bad_d);
    CHECK(!bad_d.allow && bad_d.n_reasons == 1 &&
              strstr(bad_d.reasons[0], "`key.value`: not valid base64") &&
              !strstr(bad_d.reasons[0], junk) && bad_d.key_value == NULL,
          "a key that is not base64 is a deny (%s)", bad_d.n_reasons ? bad_d.reasons[0] : "");
    decision_clear(&bad_d);
    free(text);

    /* The base64 is wiped where the parser put it, as soon as it is decoded. */
    const char *b64 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    text = xasprintf("{\"allow\":true,\"key\":{\"value\":\"%s\"}}", b64);
    cJSON *doc = cJSON_Parse(text);
    const char *where = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "key"), "value")->valuestring;
    size_t n = strlen(where);
    struct decision kd = {.ttl_s = -1};
    decision_parse(doc, &kd);
    bool zero = true;
    for (size_t i = 0; i < n; i++)
        zero = zero && where[i] == '\0';
    CHECK(kd.allow && kd.key_value != NULL && kd.key_value->len == KEY_BYTES && zero,
          "key.value is decoded and its base64 wiped in the decision document");
    cJSON *shown = decision_to_json(&kd);
    char *printed = cJSON_PrintUnformatted(shown);
    CHECK(strstr(printed, "(redacted)") && !strstr(printed, b64), "and shown redacted");
    free(printed);
    cJSON_Delete(shown);
    CHECK(key_from_decision(&kd, &s, &err) == 0 && s != NULL && kd.key_value == NULL,
          "the key is taken from the decision");
    secret_free(s);
    decision_clear(&kd);
    free(text);
    struct decision d = {.ttl_s = -1};
    decision_parse(cJSON_Parse("{\"allow\":true,\"key\":{\"id\":\"k1\"}}"), &d);
    CHECK(key_from_decision(&d, &s, &err) == 0 && s == NULL, "a key by id releases nothing here");
    decision_clear(&d);
    CHECK(secret_live() == 0, "no secret left behind");
    return test_done();
}
