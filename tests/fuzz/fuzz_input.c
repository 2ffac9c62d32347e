/* Fuzz target: the input conversion, JSON into Lua tables and back, through a real sandboxed
 * policy that returns what it was given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../policy/policy.h"
#include "../../supervisor/core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char echo[] = "function decide(input) return input end";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct policy *p;
    tether_error_t err = NULL;
    if (p == NULL && policy_lua_open("echo.lua", echo, strlen(echo), NULL, &p, &err) < 0)
        abort();
    cJSON *input = NULL;
    if (json_parse((const char *)data, size, &input, &err) < 0) {
        error_free(&err);
        return 0;
    }
    struct decision d = {.ttl_s = -1};
    policy_decide(p, input, &d);
    decision_clear(&d);
    cJSON_Delete(input);
    return 0;
}
