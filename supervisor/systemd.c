/* Transient scopes over D-Bus (see systemd.h).  libsystemd's sd-bus speaks the protocol; it
 * is loaded with dlopen on the first request, as systemd loads its own optional libraries
 * (dlopen_many_sym_or_warn: a typed table of symbols, loaded once, one error that names the
 * library), so that no other start of tether pays for it. */
#define _GNU_SOURCE
#include "systemd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/dlopen.h"
#include "core/log.h"
#include "core/util.h"

#define LIBSYSTEMD "libsystemd.so.0"

/* The optional dependency, declared for packagers. */
DLOPEN_NOTE(dlopen_note_systemd,
            "[{\"feature\":\"systemd-scope\",\"description\":\"transient scopes for monitored "
            "workloads on systemd hosts\",\"priority\":\"recommended\",\"soname\":[\"" LIBSYSTEMD
            "\"]}]");

/* The symbols, typed by sd-bus.h's own declarations. */
static DLSYM(sd_bus_open_system);
static DLSYM(sd_bus_open_user);
static DLSYM(sd_bus_flush_close_unref);
static DLSYM(sd_bus_message_new_method_call);
static DLSYM(sd_bus_message_append);
static DLSYM(sd_bus_message_open_container);
static DLSYM(sd_bus_message_close_container);
static DLSYM(sd_bus_message_read);
static DLSYM(sd_bus_message_unref);
static DLSYM(sd_bus_call);
static DLSYM(sd_bus_match_signal);
static DLSYM(sd_bus_slot_unref);
static DLSYM(sd_bus_process);
static DLSYM(sd_bus_wait);
static DLSYM(sd_bus_error_free);
static const struct dlopen_sym symbols[] = {
    DLSYM_ENTRY(sd_bus_open_system),
    DLSYM_ENTRY(sd_bus_open_user),
    DLSYM_ENTRY(sd_bus_flush_close_unref),
    DLSYM_ENTRY(sd_bus_message_new_method_call),
    DLSYM_ENTRY(sd_bus_message_append),
    DLSYM_ENTRY(sd_bus_message_open_container),
    DLSYM_ENTRY(sd_bus_message_close_container),
    DLSYM_ENTRY(sd_bus_message_read),
    DLSYM_ENTRY(sd_bus_message_unref),
    DLSYM_ENTRY(sd_bus_call),
    DLSYM_ENTRY(sd_bus_match_signal),
    DLSYM_ENTRY(sd_bus_slot_unref),
    DLSYM_ENTRY(sd_bus_process),
    DLSYM_ENTRY(sd_bus_wait),
    DLSYM_ENTRY(sd_bus_error_free),
};
static struct dlopen_lib libsystemd = {
    LIBSYSTEMD, "a systemd scope", "libsystemd0", symbols, sizeof symbols / sizeof *symbols, NULL,
    NULL};

static int libsystemd_load(tether_error_t *err)
{
    return dlopen_lib_load(&libsystemd, err);
}

bool systemd_booted(void)
{
    const char *dir = getenv("TETHER_SYSTEMD_DIR");
    struct stat st;
    return lstat(dir != NULL && *dir != '\0' ? dir : "/run/systemd/system", &st) == 0 &&
           S_ISDIR(st.st_mode);
}

bool systemd_unit_name_valid(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    if (n <= s || n > 255 || strcmp(name + n - s, suffix) != 0)
        return false;
    for (size_t i = 0; i < n - s; i++)
        if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\",
                   name[i]) == NULL)
            return false;
    return true;
}

size_t systemd_scope_properties(const struct systemd_scope *req,
                                struct systemd_property props[SYSTEMD_SCOPE_PROPERTIES_MAX])
{
    size_t n = 0;
    props[n++] =
        (struct systemd_property){.name = "Description", .type = 's', .s = req->description};
    /* Ours to divide, freeze and kill; systemd's to remove once it is empty. */
    props[n++] = (struct systemd_property){.name = "Delegate", .type = 'b', .b = 1};
    /* A scope whose processes were killed is gone at once, failed or not, instead of
     * lingering as a failed unit until someone resets it. */
    props[n++] =
        (struct systemd_property){.name = "CollectMode", .type = 's', .s = "inactive-or-failed"};
    props[n++] = (struct systemd_property){.name = "PIDs", .type = 'u', .u = (uint32_t)req->pid};
    if (req->slice != NULL)
        props[n++] = (struct systemd_property){.name = "Slice", .type = 's', .s = req->slice};
    return n;
}

/* --- the request --- */

struct job_wait {
    const char *unit;
    char result[32]; /* JobRemoved's result for our unit, or "" */
};

/* JobRemoved(u id, o job, s unit, s result): the one for our unit (its name is ours alone)
 * says how the start ended. */
static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
    (void)ret_error;
    struct job_wait *w = userdata;
    uint32_t id;
    const char *job, *unit, *result;
    if (sym_sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0)
        return 0;
    if (strcmp(unit, w->unit) == 0)
        snprintf(w->result, sizeof w->result, "%s", result);
    return 0;
}

/* True when the process is in the scope's cgroup (its last path component). */
static bool in_scope(pid_t pid, const char *unit, struct cgroup *cg)
{
    if (!cgroup_of_pid(pid, cg))
        return false;
    const char *base = strrchr(cg->rel, '/');
    if (base != NULL && strcmp(base + 1, unit) == 0)
        return true;
    cgroup_destroy(cg);
    return false;
}

static void bus_close(sd_bus **bus)
{
    if (*bus != NULL)
        sym_sd_bus_flush_close_unref(*bus);
}
static void message_unref(sd_bus_message **m)
{
    if (*m != NULL)
        sym_sd_bus_message_unref(*m);
}
static void slot_unref(sd_bus_slot **s)
{
    if (*s != NULL)
        sym_sd_bus_slot_unref(*s);
}

static int append_properties(sd_bus_message *m, const struct systemd_scope *req)
{
    struct systemd_property props[SYSTEMD_SCOPE_PROPERTIES_MAX];
    size_t n = systemd_scope_properties(req, props);
    int rc = sym_sd_bus_message_open_container(m, 'a', "(sv)");
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        const struct systemd_property *p = &props[i];
        if (p->type == 's')
            rc = sym_sd_bus_message_append(m, "(sv)", p->name, "s", p->s);
        else if (p->type == 'b')
            rc = sym_sd_bus_message_append(m, "(sv)", p->name, "b", p->b);
        else
            rc = sym_sd_bus_message_append(m, "(sv)", p->name, "au", 1, p->u);
    }
    if (rc >= 0)
        rc = sym_sd_bus_message_close_container(m);
    return rc;
}

int systemd_scope_start(const struct systemd_scope *req, struct cgroup *cg, tether_error_t *err)
{
    memset(cg, 0, sizeof *cg);
    cg->procs_fd = -1;
    if (!systemd_unit_name_valid(req->unit, ".scope") ||
        (req->slice != NULL && !systemd_unit_name_valid(req->slice, ".slice")))
        return error_set(err, EINVAL, "scope `%s`", req->unit);
    if (libsystemd_load(err) < 0)
        return -1;

    bool system = geteuid() == 0;
    const char *which = system ? "the system bus" : "the user's bus";
    __attribute__((cleanup(bus_close))) sd_bus *bus = NULL;
    int rc = system ? sym_sd_bus_open_system(&bus) : sym_sd_bus_open_user(&bus);
    if (rc < 0)
        return error_set(err, -rc, "%s", which);

    /* The match first: the job may end before the call's answer is read. */
    struct job_wait w = {.unit = req->unit};
    __attribute__((cleanup(slot_unref))) sd_bus_slot *slot = NULL;
    rc = sym_sd_bus_match_signal(bus, &slot, "org.freedesktop.systemd1",
                                 "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                                 "JobRemoved", on_job_removed, &w);
    if (rc < 0)
        return error_set(err, -rc, "%s: subscribing to JobRemoved", which);

    __attribute__((cleanup(message_unref))) sd_bus_message *m = NULL;
    __attribute__((cleanup(message_unref))) sd_bus_message *reply = NULL;
    rc = sym_sd_bus_message_new_method_call(
        bus, &m, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager", "StartTransientUnit");
    if (rc >= 0)
        rc = sym_sd_bus_message_append(m, "ss", req->unit, "fail");
    if (rc >= 0)
        rc = append_properties(m, req);
    if (rc >= 0)
        rc = sym_sd_bus_message_append(m, "a(sa(sv))", 0);
    if (rc < 0)
        return error_set(err, -rc, "StartTransientUnit `%s`: building the call", req->unit);

    uint64_t deadline = time_mono_ns() + (uint64_t)SYSTEMD_SCOPE_TIMEOUT_MS * 1000000u;
    sd_bus_error berr = SD_BUS_ERROR_NULL;
    rc = sym_sd_bus_call(bus, m, (uint64_t)SYSTEMD_SCOPE_TIMEOUT_MS * 1000u, &berr, &reply);
    if (rc < 0) {
        error_set(err, 0, "StartTransientUnit `%s`: %s", req->unit,
                  berr.message ? berr.message : strerror(-rc));
        sym_sd_bus_error_free(&berr);
        return -1;
    }
    const char *job = NULL;
    if (sym_sd_bus_message_read(reply, "o", &job) < 0)
        return error_set(err, 0, "StartTransientUnit `%s`: an answer without a job", req->unit);
    log_debug("systemd: job %s starts `%s`", job, req->unit);

    /* The job's end, or the process in the scope's cgroup: whichever is seen first (a
     * manager that sends no JobRemoved to this connection has still moved it). */
    for (;;) {
        rc = sym_sd_bus_process(bus, NULL);
        if (rc < 0)
            return error_set(err, -rc, "%s", which);
        if (w.result[0] != '\0')
            break;
        if (rc > 0)
            continue;
        if (in_scope(req->pid, req->unit, cg))
            return 0;
        uint64_t now = time_mono_ns();
        if (now >= deadline)
            return error_set(err, ETIMEDOUT, "scope `%s`", req->unit);
        uint64_t left_us = (deadline - now) / 1000u;
        rc = sym_sd_bus_wait(bus, left_us < 50000 ? left_us : 50000);
        if (rc < 0)
            return error_set(err, -rc, "%s", which);
    }
    if (strcmp(w.result, "done") != 0)
        return error_set(err, 0, "scope `%s`: the job ended \"%s\"", req->unit, w.result);
    if (!in_scope(req->pid, req->unit, cg))
        return error_set(err, 0, "scope `%s`: the process is not in it", req->unit);
    return 0;
}
