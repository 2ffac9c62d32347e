/* The audit trail's hash chain: appends verify, and each kind of tampering is found at the
 * line where it happened. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../supervisor/audit.h"
#include "../../supervisor/core/util.h"
#include "test.h"

static char dir[] = "/tmp/tether-audit-XXXXXX";
static char path[256];

static void append_n(int n)
{
    for (int i = 0; i < n; i++) {
        cJSON *rec = audit_record_new("test");
        cJSON_AddNumberToObject(rec, "i", i);
        tether_error_t err = NULL;
        if (audit_append(path, rec, &err) < 0) {
            printf("# append: %s\n", err->msg);
            error_free(&err);
        }
        cJSON_Delete(rec);
    }
}

static char **read_lines(size_t *n)
{
    char *text = NULL;
    size_t len;
    read_file(path, 1 << 20, &text, &len, NULL);
    char **lines = NULL;
    *n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        lines = realloc(lines, (*n + 1) * sizeof *lines);
        lines[(*n)++] = strdup(l);
    }
    free(text);
    return lines;
}

static void write_lines(char **lines, size_t n)
{
    FILE *f = fopen(path, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
}

static struct audit_report verify(void)
{
    struct audit_report rep;
    FILE *f = fopen(path, "r");
    audit_verify_stream(f, NULL, &rep, NULL);
    fclose(f);
    return rep;
}

static void reset(int n)
{
    unlink(path);
    append_n(n);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 99;
    snprintf(path, sizeof path, "%s/sub/dir/audit.jsonl", dir);

    append_n(5);
    struct audit_report rep = verify();
    CHECK(rep.bad_line == 0 && rep.records == 5, "five appended records verify (%zu)", rep.records);

    size_t n;
    char **lines = read_lines(&n);
    CHECK(n == 5 && strstr(lines[0], "\"prev\":\"0000000000") != NULL,
          "the first record starts the chain");
    CHECK(strstr(lines[4], rep.head) != NULL, "the head is the last record's hash");

    /* Edit a value in line 3. */
    char *edited = strdup(lines[2]);
    char *p = strstr(edited, "\"i\":2");
    p[4] = '7';
    char *copy[5] = {lines[0], lines[1], edited, lines[3], lines[4]};
    write_lines(copy, 5);
    rep = verify();
    CHECK(rep.bad_line == 3 && strstr(rep.why, "edited"),
          "an edited record is found at its line (%zu: %s)", rep.bad_line, rep.why);

    /* Remove line 2. */
    char *removed[4] = {lines[0], lines[2], lines[3], lines[4]};
    write_lines(removed, 4);
    rep = verify();
    CHECK(rep.bad_line == 2 && strstr(rep.why, "removed"),
          "a removed record is found where it was (%zu: %s)", rep.bad_line, rep.why);

    /* Remove line 1. */
    write_lines(lines + 1, 4);
    rep = verify();
    CHECK(rep.bad_line == 1, "removing the first record is found (%s)", rep.why);

    /* Swap lines 4 and 5. */
    char *swapped[5] = {lines[0], lines[1], lines[2], lines[4], lines[3]};
    write_lines(swapped, 5);
    rep = verify();
    CHECK(rep.bad_line == 4, "reordered records are found (%zu: %s)", rep.bad_line, rep.why);

    /* Garbage line. */
    char *garbage[3] = {lines[0], "{\"hello\":1}", lines[1]};
    write_lines(garbage, 3);
    rep = verify();
    CHECK(rep.bad_line == 2 && strstr(rep.why, "not a tether audit record"),
          "a foreign line is found");

    /* A torn last line: the next append starts on a fresh line and the damage stays visible. */
    reset(2);
    FILE *f = fopen(path, "a");
    fputs("{\"time\":\"torn", f);
    fclose(f);
    append_n(1);
    free(lines[0]);
    for (size_t i = 1; i < n; i++)
        free(lines[i]);
    free(lines);
    lines = read_lines(&n);
    rep = verify();
    CHECK(n == 4 && rep.bad_line == 3, "a torn line is reported, and the append after it is whole");

    /* Not a regular file. */
    tether_error_t err = NULL;
    cJSON *rec = audit_record_new("x");
    CHECK(audit_append(dir, rec, &err) < 0, "appending to a directory fails (%s)",
          err ? err->msg : "");
    error_free(&err);
    CHECK(audit_append("/proc/version", rec, &err) < 0,
          "appending to an unwritable file fails (%s)", err ? err->msg : "");
    error_free(&err);
    cJSON_Delete(rec);

    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(edited);
    char *cmd = xasprintf("rm -rf %s", dir);
    (void)!system(cmd);
    free(cmd);
    return test_done();
}
