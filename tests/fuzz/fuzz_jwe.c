/* Fuzz target: the JWE parser (the JSON serialization ocicrypt writes) and the layer options
 * it carries.  The first byte picks which. */
#include <stdint.h>

#include "../../supervisor/image/image.h"
#include "../../supervisor/image/jwe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tether_error_t err = NULL;
    const char *text = (const char *)data + 1;
    if (data[0] & 1) {
        struct jwe j;
        if (jwe_parse(text, size - 1, &j, &err) == 0)
            jwe_clear(&j);
    } else {
        struct secret *key = NULL;
        unsigned char nonce[16];
        char digest[IMAGE_DIGEST_LEN + 1];
        if (image_parse_privopts(data + 1, size - 1, &key, nonce, digest, &err) == 0)
            secret_free(key);
    }
    error_free(&err);
    return 0;
}
