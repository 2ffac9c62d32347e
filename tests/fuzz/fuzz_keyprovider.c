/* Fuzz target: the keyprovider packet and the ocicrypt request parsers; the first byte
 * chooses which. */
#include <stdint.h>

#include "../../supervisor/image/keyprovider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    tether_error_t err = NULL;
    if (data[0] % 2 == 0) {
        struct keyprovider_packet p;
        if (keyprovider_packet_parse(data + 1, size - 1, &p, &err) == 0)
            cJSON_Delete(keyprovider_packet_metadata(&p));
        keyprovider_packet_clear(&p);
    } else {
        struct keyprovider_request r;
        if (keyprovider_request_parse((const char *)data + 1, size - 1, &r, &err) == 0)
            keyprovider_request_clear(&r);
    }
    error_free(&err);
    return 0;
}
