/* Unit tests for the scope request (supervisor/systemd.c): the properties sent with
 * StartTransientUnit, unit names, and the "systemd manages this host" test.  The D-Bus
 * exchange itself is tested against a fake manager in tests/integration/test_systemd.py. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../supervisor/systemd.h"
#include "test.h"

static const struct systemd_property *find(const struct systemd_property *p, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0)
            return &p[i];
    return NULL;
}

static void test_properties(void)
{
    struct systemd_property p[SYSTEMD_SCOPE_PROPERTIES_MAX];
    struct systemd_scope req = {
        .unit = "tether-42-0.scope", .description = "workload of tether 42", .pid = 4242};
    size_t n = systemd_scope_properties(&req, p);
    CHECK(n == 4, "four properties without a slice (got %zu)", n);
    static const char *const order[] = {"Description", "Delegate", "CollectMode", "PIDs"};
    for (size_t i = 0; i < 4 && i < n; i++)
        CHECK_STR(p[i].name, order[i], "property %zu", i);
    const struct systemd_property *d = find(p, n, "Delegate");
    CHECK(d && d->type == 'b' && d->b == 1, "Delegate=true: the scope is ours to divide");
    const struct systemd_property *pids = find(p, n, "PIDs");
    CHECK(pids && pids->type == 'u' && pids->u == 4242, "PIDs holds the init alone");
    const struct systemd_property *desc = find(p, n, "Description");
    CHECK(desc && desc->type == 's', "Description is a string");
    CHECK_STR(desc ? desc->s : NULL, "workload of tether 42", "Description");
    const struct systemd_property *cm = find(p, n, "CollectMode");
    CHECK_STR(cm ? cm->s : NULL, "inactive-or-failed", "CollectMode");
    CHECK(find(p, n, "Slice") == NULL, "no Slice: the manager's default");

    req.slice = "tether.slice";
    n = systemd_scope_properties(&req, p);
    CHECK(n == 5, "five properties with a slice (got %zu)", n);
    const struct systemd_property *s = find(p, n, "Slice");
    CHECK(s && s->type == 's', "Slice is a string");
    CHECK_STR(s ? s->s : NULL, "tether.slice", "Slice");
    CHECK(n <= SYSTEMD_SCOPE_PROPERTIES_MAX, "within the table's size");
}

static void test_names(void)
{
    CHECK(systemd_unit_name_valid("tether-4242-0.scope", ".scope"), "tether-PID-N.scope");
    CHECK(systemd_unit_name_valid("a:b_c\\x2d.slice", ".slice"), "every character systemd takes");
    CHECK(!systemd_unit_name_valid(".scope", ".scope"), "a suffix alone");
    CHECK(!systemd_unit_name_valid("tether-1-0.scope", ".slice"), "the wrong suffix");
    CHECK(!systemd_unit_name_valid("a/b.scope", ".scope"), "a slash");
    CHECK(!systemd_unit_name_valid("a b.scope", ".scope"), "a space");
    CHECK(!systemd_unit_name_valid("t\xc3\xa9.scope", ".scope"), "a byte above 127");
    char name[300];
    memset(name, 'a', sizeof name);
    strcpy(name + 249, ".scope"); /* 255 bytes */
    CHECK(systemd_unit_name_valid(name, ".scope"), "255 bytes");
    memset(name, 'a', sizeof name);
    strcpy(name + 250, ".scope");
    CHECK(!systemd_unit_name_valid(name, ".scope"), "256 bytes");
}

static void test_booted(void)
{
    char dir[] = "/tmp/tether-unit-systemd-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "a directory to stand for /run/systemd/system");
    setenv("TETHER_SYSTEMD_DIR", dir, 1);
    CHECK(systemd_booted(), "an existing directory: systemd manages the host");
    char *file = NULL;
    CHECK(asprintf(&file, "%s/file", dir) > 0, "a path");
    FILE *f = fopen(file, "w");
    if (f)
        fclose(f);
    setenv("TETHER_SYSTEMD_DIR", file, 1);
    CHECK(!systemd_booted(), "a file is not the directory");
    unlink(file);
    CHECK(!systemd_booted(), "a missing directory: no systemd");
    rmdir(dir);
    free(file);
    unsetenv("TETHER_SYSTEMD_DIR");
    struct stat st;
    CHECK(systemd_booted() == (stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode)),
          "unset: /run/systemd/system decides");
}

static void test_no_scope_for_a_bad_name(void)
{
    struct cgroup cg;
    tether_error_t err = NULL;
    struct systemd_scope req = {.unit = "../x.scope", .description = "d", .pid = getpid()};
    CHECK(systemd_scope_start(&req, &cg, &err) < 0 && cg.dir == NULL,
          "a unit name systemd would refuse is not sent");
    error_free(&err);
    req.unit = "tether-1-0.scope";
    req.slice = "x.scope";
    CHECK(systemd_scope_start(&req, &cg, &err) < 0 && cg.dir == NULL, "nor a bad slice");
    error_free(&err);
}

int main(void)
{
    test_properties();
    test_names();
    test_booted();
    test_no_scope_for_a_bad_name();
    return test_done();
}
