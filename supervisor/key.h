/* Key release: the key a decision hands over, in secret memory, checked before use. */
#pragma once

#include "../policy/policy.h"
#include "core/secret.h"

#define KEY_BYTES 32 /* AES-256 */

/* Takes the key the decision released by value (decoded when it was parsed) and checks its
 * length.  Returns 0 with *out NULL when the decision releases no key by value.  Errors never
 * quote the key. */
int key_from_decision(struct decision *d, struct secret **out, tether_error_t *err);

/* <keystore>/<id><suffix> (".key": KEY_BYTES exactly; ".pem": 1 to max bytes): the directory
 * and the file are trust anchors that give group and others no access at all (core/trust.h),
 * and id must be a plain file name.  Read into secret memory. */
int keystore_read(const char *keystore, const char *id, const char *suffix, size_t min, size_t max,
                  struct secret **out, tether_error_t *err);
