/* Evaluation in a child process (see policy_decide_isolated in policy.h).
 *
 * The child evaluates, writes one JSON message to a pipe and exits:
 *   {"doc": <the engine's document>, "info": ...}            on success
 *   {"error": "...", "unreachable": bool, "connected": bool, "info": ...}   on failure
 * The parent reads it under a deadline; the document is validated again here, by
 * decision_parse, so a child that lies about a decision can at most fail it. */
#define _GNU_SOURCE
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"

/* The message is the engine's document: a few kilobytes.  What is larger is a policy that
 * tries to make its supervisor spend memory. */
#define MESSAGE_MAX (4u << 20)

static void __attribute__((noreturn)) child(struct policy *p, const cJSON *input, int fd)
{
    /* If the supervisor goes, so does its evaluation. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    tether_error_t err = NULL;
    cJSON *doc = NULL, *info = NULL;
    cJSON *msg = cJSON_CreateObject();
    if (p->ops->evaluate(p, input, &doc, &info, &err) < 0) {
        cJSON_AddStringToObject(msg, "error", err->msg);
        cJSON_AddBoolToObject(msg, "unreachable",
                              err->code == POLICY_UNREACHABLE || err->code == POLICY_NO_ANSWER);
        cJSON_AddBoolToObject(msg, "connected", err->code == POLICY_NO_ANSWER);
        cJSON_Delete(doc);
    } else {
        cJSON_AddItemToObject(msg, "doc", doc);
    }
    if (info != NULL)
        cJSON_AddItemToObject(msg, "info", info);
    char *text = cJSON_PrintUnformatted(msg);
    size_t len = text ? strlen(text) : 0, off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(1);
        off += (size_t)n;
    }
    _exit(0);
}

/* Reads until EOF, the cap, or the deadline: 0, or -1 with *why. */
static int read_message(int fd, uint64_t deadline_ns, char **out, size_t *len, const char **why)
{
    size_t cap = 4096;
    char *buf = xmalloc(cap);
    *len = 0;
    for (;;) {
        uint64_t now = time_mono_ns();
        if (now >= deadline_ns) {
            free(buf);
            *why = "timed out";
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int timeout = (int)((deadline_ns - now) / 1000000u) + 1;
        int r = poll(&pfd, 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue; /* the deadline is checked above */
        if (*len + 1 >= cap) {
            if (cap >= MESSAGE_MAX) {
                free(buf);
                *why = "returned more than 4 MiB";
                return -1;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + *len, cap - *len - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            free(buf);
            *why = "could not be read";
            return -1;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    buf[*len] = '\0';
    *out = buf;
    return 0;
}

void policy_decide_isolated(struct policy *p, const cJSON *input, struct decision *out)
{
    policy_decide_within(p, input, p->bound_ms ? p->bound_ms : 10000, out);
}

static void decide_within(struct policy *p, const cJSON *input, uint64_t bound,
                          struct decision *out)
{
    decision_clear(out);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        decision_deny(out, "policy error: cannot evaluate apart: pipe: %s", strerror(errno));
        return;
    }
    uint64_t deadline = time_mono_ns() + bound * 1000000u;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        decision_deny(out, "policy error: cannot evaluate apart: fork: %s", strerror(e));
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        child(p, input, fds[1]);
    }
    close(fds[1]);
    cleanup_free char *text = NULL;
    size_t len = 0;
    const char *why = NULL;
    int rc = read_message(fds[0], deadline, &text, &len, &why);
    close(fds[0]);
    /* Whatever it was doing, it is done now: a hung child is killed, not waited for. */
    if (rc < 0)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        decision_deny(out, "policy error: the evaluation %s (its bound is %llu ms)", why,
                      (unsigned long long)bound);
        return;
    }
    cJSON *msg = cJSON_ParseWithLength(text, len);
    explicit_bzero(text, len); /* a decision may carry a key */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !cJSON_IsObject(msg)) {
        cJSON_Delete(msg);
        if (WIFSIGNALED(status))
            decision_deny(out, "policy error: the evaluation was ended by signal %d",
                          WTERMSIG(status));
        else
            decision_deny(out,
                          "policy error: the evaluation stopped (status %d) without a decision",
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return;
    }
    cJSON *info = cJSON_DetachItemFromObjectCaseSensitive(msg, "info");
    cJSON *error = cJSON_GetObjectItemCaseSensitive(msg, "error");
    if (cJSON_IsString(error)) {
        decision_deny(out, "policy error: %s", error->valuestring);
        out->unreachable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "unreachable"));
        out->connected = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "connected"));
    } else {
        cJSON *doc = cJSON_DetachItemFromObjectCaseSensitive(msg, "doc");
        decision_parse(doc, out);
    }
    out->engine_info = info;
    cJSON_Delete(msg);
}

void policy_decide_within(struct policy *p, const cJSON *input, uint64_t bound,
                          struct decision *out)
{
    uint64_t t0 = time_mono_ns();
    decide_within(p, input, bound, out);
    out->elapsed_us = (time_mono_ns() - t0) / 1000;
}
