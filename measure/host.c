/* The host section of the input document, read from /etc, /proc and /sys. */
#define _GNU_SOURCE
#include <ctype.h>
#include <string.h>
#include <sys/utsname.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "measure.h"

#define SMALL_FILE_MAX (64 * 1024)

/* The first line of a small file, without trailing white space; NULL when unreadable. */
static char *read_line(const char *path)
{
    char *text = NULL;
    if (read_file(path, SMALL_FILE_MAX, &text, NULL, NULL) < 0)
        return NULL;
    text[strcspn(text, "\n")] = '\0';
    size_t n = strlen(text);
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        text[--n] = '\0';
    return text;
}

/* machine-id(5) is 32 lowercase hex digits; boot_id is the same with dashes, kept as the
 * kernel prints it. Anything else is not an id, and so unknown. */
static cJSON *id_or_null(const char *path, bool dashes)
{
    cleanup_free char *s = read_line(path);
    if (s == NULL)
        return cJSON_CreateNull();
    size_t hex = 0;
    for (const char *p = s; *p; p++) {
        if (isxdigit((unsigned char)*p) && !isupper((unsigned char)*p))
            hex++;
        else if (!(dashes && *p == '-'))
            return cJSON_CreateNull();
    }
    return hex == 32 ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *kernel_collect(const struct utsname *u)
{
    cJSON *k = cJSON_CreateObject();
    cJSON_AddStringToObject(k, "release", u->release);
    cJSON_AddStringToObject(k, "version", u->version);

    cleanup_free char *cmdline = read_line("/proc/cmdline");
    cJSON_AddItemToObject(k, "cmdline", json_string_or_null(cmdline));
    cJSON_AddItemToObject(k, "cmdline_params",
                          cmdline ? measure_parse_cmdline(cmdline) : cJSON_CreateNull());

    cleanup_free char *lockdown = read_line("/sys/kernel/security/lockdown");
    cJSON_AddItemToObject(k, "lockdown",
                          json_string_or_null(lockdown ? measure_parse_lockdown(lockdown) : NULL));

    cleanup_free char *tainted = read_line("/proc/sys/kernel/tainted");
    int64_t t;
    if (tainted != NULL && parse_int64(tainted, 0, INT64_MAX, &t) == 0)
        cJSON_AddNumberToObject(k, "tainted", (double)t);
    else
        cJSON_AddNullToObject(k, "tainted");
    return k;
}

static cJSON *os_collect(void)
{
    cleanup_file FILE *f = fopen("/etc/os-release", "re");
    if (f == NULL)
        f = fopen("/usr/lib/os-release", "re");
    cleanup_json cJSON *all = f ? measure_parse_os_release(f) : cJSON_CreateObject();

    cJSON *os = cJSON_CreateObject();
    static const char *const keys[][2] = {
        {"ID", "id"}, {"VERSION_ID", "version_id"}, {"PRETTY_NAME", "pretty_name"}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(all, keys[i][0]);
        cJSON_AddItemToObject(os, keys[i][1], json_string_or_null(cJSON_GetStringValue(v)));
    }
    return os;
}

static cJSON *secure_boot_collect(void)
{
    static const char path[] =
        "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0a3ec5c2a8b";
    cleanup_free char *data = NULL;
    size_t len = 0;
    if (read_file(path, 64, &data, &len, NULL) < 0)
        return cJSON_CreateNull();
    int sb = measure_parse_secure_boot((const unsigned char *)data, len);
    return sb < 0 ? cJSON_CreateNull() : cJSON_CreateBool(sb);
}

cJSON *measure_host_collect(const cJSON *labels)
{
    struct utsname u;
    cJSON *host = cJSON_CreateObject();
    bool have_uname = uname(&u) == 0;

    cJSON_AddItemToObject(host, "hostname", json_string_or_null(have_uname ? u.nodename : NULL));
    cJSON_AddItemToObject(host, "machine_id", id_or_null("/etc/machine-id", false));
    cJSON_AddItemToObject(host, "boot_id", id_or_null("/proc/sys/kernel/random/boot_id", true));
    cJSON_AddItemToObject(host, "arch", json_string_or_null(have_uname ? u.machine : NULL));
    cJSON_AddItemToObject(host, "kernel", have_uname ? kernel_collect(&u) : cJSON_CreateNull());
    cJSON_AddItemToObject(host, "os", os_collect());
    cJSON_AddItemToObject(host, "secure_boot", secure_boot_collect());
    cJSON_AddItemToObject(host, "labels",
                          labels ? cJSON_Duplicate(labels, true) : cJSON_CreateObject());
    return host;
}
