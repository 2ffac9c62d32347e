/* Fuzz target: the decision parser and its normal form. */
#include <stdint.h>
#include <stdlib.h>

#include "../../policy/policy.h"
#include "../../supervisor/core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *doc = NULL;
    tether_error_t err = NULL;
    if (json_parse((const char *)data, size, &doc, &err) < 0) {
        error_free(&err);
        return 0;
    }
    struct decision d = {.ttl_s = -1};
    decision_parse(doc, &d);
    cJSON *out = decision_to_json(&d);
    free(json_print(out));
    free(decision_reasons_joined(&d));
    cJSON_Delete(out);
    decision_clear(&d);
    return 0;
}
