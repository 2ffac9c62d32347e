/* Key release: the key a decision hands over, in secret memory, checked before use. */
#pragma once

#include "../policy/policy.h"
#include "core/secret.h"

#define KEY_BYTES 32 /* AES-256 */

/* Decodes decision.key.value (base64) into secret memory and checks its length.  Returns 0
 * with *out NULL when the decision releases no key by value.  Errors never quote the key. */
int key_from_decision(const struct decision *d, struct secret **out, tether_error_t *err);
