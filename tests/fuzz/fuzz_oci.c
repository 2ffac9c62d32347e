/* Fuzz target: the OCI state a hook reads on stdin, and a bundle's config.json.  The first
 * byte picks which. */
#include <stdint.h>

#include "../../measure/measure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    cJSON *out = NULL;
    tether_error_t err = NULL;
    const char *text = (const char *)data + 1;
    if (data[0] & 1)
        measure_parse_oci_state(text, size - 1, &out, &err);
    else
        measure_parse_oci_config(text, size - 1, "/bundle", NULL, NULL, &out, &err);
    cJSON_Delete(out);
    error_free(&err);
    return 0;
}
