/* Helpers the verbs share: labels from the command line, usage output. */
#define _GNU_SOURCE
#include <stdio.h>

#include "../measure/measure.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "tether.h"

int cli_add_label(cJSON *labels, const char *kv, tether_error_t *err)
{
    cleanup_free char *key = NULL;
    cleanup_free char *value = NULL;
    if (measure_parse_label(kv, &key, &value, err) < 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(labels, key) != NULL)
        return error_set(err, 0, "label `%s` is given twice", key);
    cJSON_AddStringToObject(labels, key, value);
    return 0;
}

int cli_usage(const char *text, int is_error)
{
    if (is_error) {
        fprintf(stderr, "%s", text);
        return EXIT_FAILED;
    }
    fputs(text, stdout);
    return 0;
}
