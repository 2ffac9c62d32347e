/* Fuzz target: the cosign signature parsers (index.json, the signature manifest, the
 * simple-signing payload); the first byte chooses which. */
#include <stdint.h>
#include <stdlib.h>

#include "../../measure/imgsig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    tether_error_t err = NULL;
    switch (data[0] % 3) {
    case 0: {
        char **digests = NULL;
        size_t n = 0;
        if (imgsig_index_find(text, len,
                              "sha256:"
                              "0000000000000000000000000000000000000000000000000000000000000000",
                              &digests, &n, &err) == 0) {
            for (size_t i = 0; i < n; i++)
                free(digests[i]);
            free(digests);
        }
        break;
    }
    case 1: {
        struct imgsig_layer *layers = NULL;
        size_t n = 0;
        if (imgsig_manifest_parse(text, len, &layers, &n, &err) == 0)
            imgsig_layers_free(layers, n);
        break;
    }
    default: {
        struct imgsig_payload p;
        if (imgsig_payload_parse(text, len, &p, &err) == 0)
            cJSON_Delete(p.doc);
        break;
    }
    }
    error_free(&err);
    return 0;
}
