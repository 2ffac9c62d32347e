/* Fuzz target: the node configuration parser. */
#include <stdint.h>

#include "../../supervisor/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    tether_error_t err = NULL;
    config_parse("fuzz.json", (const char *)data, size, &cfg, &err);
    error_free(&err);
    config_clear(&cfg);
    return 0;
}
