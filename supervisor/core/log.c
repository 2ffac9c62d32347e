/* Logging to stderr, one line per message, prefixed "tether: ". */
#define _GNU_SOURCE
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum log_level threshold = LOG_WARN;

void log_init(void)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const char *v = getenv("TETHER_LOG");
    if (v == NULL)
        return;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(v, names[i]) == 0) {
            threshold = (enum log_level)i;
            return;
        }
    }
    log_warn("TETHER_LOG=%s is not one of error, warn, info, debug; using warn", v);
}

void log_set_level(enum log_level level)
{
    threshold = level;
}

int log_enabled(enum log_level level)
{
    return level <= threshold;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const prefix[] = {"", "warning: ", "", "debug: "};
    if (!log_enabled(level))
        return;

    /* Format first so that one message is one write(2), whole even when stderr is shared. */
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* A message cut to the buffer ends between UTF-8 characters, never inside one. */
    if ((size_t)n >= sizeof line) {
        size_t len = sizeof line - 1, i = len;
        while (i > 0 && ((unsigned char)line[i - 1] & 0xC0) == 0x80)
            i--;
        unsigned char lead = i > 0 ? (unsigned char)line[i - 1] : 0;
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (i > 0 && i - 1 + need > len)
            line[i - 1] = '\0';
    }
    /* A message never spans lines: a newline inside it would forge a second log line. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "tether: %s%s\n", prefix[level], line);
}
