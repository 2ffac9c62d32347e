/* Fuzz target: the confine block parser (capability, system call, namespace and rlimit
 * names resolved against tether's table and libseccomp). */
#include <stdint.h>
#include <stdlib.h>

#include "../../policy/confine.h"
#include "../../supervisor/core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *block = NULL;
    tether_error_t err = NULL;
    if (json_parse((const char *)data, size, &block, &err) < 0) {
        error_free(&err);
        return 0;
    }
    struct confine c = {0};
    free(confine_parse(block, &c));
    confine_clear(&c);
    cJSON_Delete(block);
    return 0;
}
