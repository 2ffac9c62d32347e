/* Fuzz target: the sealed-workload header parser. */
#include <stdint.h>

#include "../../supervisor/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seal_header h;
    tether_error_t err = NULL;
    if (seal_parse_header(data, size, &h, &err) == 0) {
        (void)seal_chunks(&h);
        (void)seal_payload_len(&h);
    }
    seal_header_clear(&h);
    error_free(&err);
    return 0;
}
