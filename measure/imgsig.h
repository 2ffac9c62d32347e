/* Cosign signatures of an image in an OCI image layout, verified against the node's trusted
 * keys, as the input's image.signatures (doc/tether.1, "IMAGE SIGNATURES").
 *
 * What is verified: signatures that `cosign sign --key` makes (ECDSA P-256 with SHA-256,
 * DER-encoded; or Ed25519) over a "simple signing" payload, stored as a signature manifest
 * that the layout's index.json names `sha256-<hex>.sig` (org.opencontainers.image.ref.name,
 * what `skopeo copy` or `oras` write for cosign's tag) or marks with the annotation
 * kind=dev.cosignproject.cosign/sigs (what `cosign save` writes).  Every blob read is checked
 * against its digest.  What is not: keyless signatures (Fulcio certificates), transparency
 * log inclusion (Rekor), timestamps, sigstore bundles, attestations. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../supervisor/core/error.h"

#define IMGSIG_PAYLOAD_MEDIA_TYPE "application/vnd.dev.cosign.simplesigning.v1+json"
#define IMGSIG_SIGNATURE_ANNOTATION "dev.cosignproject.cosign/signature"
#define IMGSIG_PAYLOAD_TYPE "cosign container image signature"
#define IMGSIG_MAX_MANIFESTS 16 /* signature manifests looked at per image */
#define IMGSIG_MAX_LAYERS 64    /* signatures looked at per signature manifest */

/* --- pure parsers (fuzzed) --- */

/* The digests ("sha256:<hex>") of the signature manifests that index.json's text names for
 * manifest_digest (at most IMGSIG_MAX_MANIFESTS, each once); *n may be 0.  Free each and the
 * array. */
int imgsig_index_find(const char *text, size_t len, const char *manifest_digest, char ***digests,
                      size_t *n, tether_error_t *err);

/* The simple-signing layers of a signature manifest, in order. */
struct imgsig_layer {
    char *digest;    /* "sha256:<hex>" */
    int64_t size;    /* -1 when the descriptor gives none */
    char *signature; /* the base64 annotation, or NULL when absent */
};
int imgsig_manifest_parse(const char *text, size_t len, struct imgsig_layer **layers, size_t *n,
                          tether_error_t *err);
void imgsig_layers_free(struct imgsig_layer *layers, size_t n);

/* A simple-signing payload: {"critical": {"identity": {"docker-reference"}, "image":
 * {"docker-manifest-digest"}, "type": IMGSIG_PAYLOAD_TYPE}, "optional": ...}.  A duplicate
 * key, or one that differs from a known key only in case (which Go's decoder, cosign's,
 * would take for it), is an error.  *doc is the parsed payload; the strings point into it. */
struct imgsig_payload {
    cJSON *doc;
    const char *digest;           /* critical.image.docker-manifest-digest */
    const char *docker_reference; /* critical.identity.docker-reference */
};
int imgsig_payload_parse(const char *text, size_t len, struct imgsig_payload *p,
                         tether_error_t *err);

/* --- verification --- */

/* The signatures of the image whose manifest has the digest manifest_digest
 * ("sha256:<hex>"), read from the layout open at layout_dirfd, as an array of
 *   {signer, signer_fingerprint, verified, digest_matches, docker_reference,
 *    reference_matches, payload, signature_manifest, layer, error}
 * - signer: the trusted key file (an entry of trusted_signers) whose key verifies the
 *   signature, else null; signer_fingerprint: "sha256:<hex>" of that key's DER
 *   SubjectPublicKeyInfo, else null;
 * - verified: the signature is valid under that trusted key (never true otherwise);
 * - digest_matches: the payload's docker-manifest-digest is manifest_digest;
 * - docker_reference: the payload's, which its signer claims (null when unparsed);
 *   reference_matches: it names docker_reference (the reference the image was asked for;
 *   equal, or equal to its repository without tag or digest), null when docker_reference is
 *   NULL;
 * - payload: the parsed payload (null when it does not parse; error says why);
 * - error: why the entry cannot count (a missing blob, a bad digest, an unparsable payload,
 *   no trusted key verifies it), else null.
 * trusted_signers is an array of PEM public key paths (ECDSA P-256 or Ed25519), each a trust
 * anchor (core/trust.h): one that is refused or is not such a key is an error (-1), as is an
 * index.json that cannot be read.  An image without signatures gives an empty array. */
int image_signatures_verify(int layout_dirfd, const char *manifest_digest,
                            const char *docker_reference, const cJSON *trusted_signers, cJSON **out,
                            tether_error_t *err);

/* Whether sigs (image_signatures_verify's array) holds a signature that counts: verified by
 * a trusted key, and digest_matches.  require_signed_images refuses an image without one
 * (exit 125).  reference_matches is left to the policy. */
bool image_signatures_any_valid(const cJSON *sigs);
