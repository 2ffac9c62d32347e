/* Fuzz target: OPA's answers, under each status that matters. */
#include <stdint.h>
#include <stdlib.h>

#include "../../policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 400, 401, 500};
    if (size < 1)
        return 0;
    long status = statuses[data[0] % 4];
    cJSON *result = NULL, *info = NULL;
    tether_error_t err = NULL;
    if (policy_opa_parse_answer(status, (const char *)data + 1, size - 1, "https://opa:8181/",
                                "tether/decision", &result, &info, &err) == 0) {
        struct decision d = {.ttl_s = -1};
        decision_parse(result, &d);
        decision_clear(&d);
    }
    error_free(&err);
    cJSON_Delete(info);
    return 0;
}
