/* Key release: the key a decision hands over, in secret memory, checked before use. */
#pragma once

#include "../policy/policy.h"
#include "core/secret.h"

#define KEY_BYTES 32 /* AES-256 */

/* Takes the key the decision released by value (decoded when it was parsed) and checks its
 * length.  Returns 0 with *out NULL when the decision releases no key by value.  Errors never
 * quote the key. */
int key_from_decision(struct decision *d, struct secret **out, tether_error_t *err);
