/* Sealed workloads: the file format (doc/sealed-format.md), sealing, and opening: signature,
 * header, and decryption into a file in memory only (core/memfile.h). */
#pragma once

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/memfile.h"
#include "core/secret.h"

#define SEAL_MAGIC "TETHSEAL"
#define SEAL_VERSION 2     /* the newest: what tether seal writes unless asked otherwise */
#define SEAL_VERSION_MIN 1 /* the oldest this tether reads and writes */
#define SEAL_TYPE_EXECUTABLE 1
#define SEAL_TYPE_ROOTFS 2
#define SEAL_CIPHER_AES256GCM 1
#define SEAL_FLAG_SIGNED 1
#define SEAL_FIXED_LEN 74 /* the header before its variable parts */
#define SEAL_TAG_LEN 16
#define SEAL_TRAILER_LEN (32 + 64) /* signer's Ed25519 public key, signature */

struct seal_header {
    uint16_t version;
    uint8_t type, cipher, flags;
    uint32_t chunk_size;
    uint64_t plain_size;
    unsigned char nonce_prefix[8];
    char *key_id;
    char *entrypoint; /* "" for an executable */
    char *policy;     /* the embedded Lua policy ("" when none) */
    size_t policy_len;
    unsigned char policy_sha256[32];
    size_t header_len;
    unsigned char header_sha256[32]; /* of the header bytes: bound into every chunk */
};

/* Parses and checks a header from the start of a file (buf may hold more).  Pure: no I/O. */
int seal_parse_header(const unsigned char *buf, size_t len, struct seal_header *h,
                      tether_error_t *err);
void seal_header_clear(struct seal_header *h);
/* Number of chunks, and the bytes they take in the file. */
uint64_t seal_chunks(const struct seal_header *h);
uint64_t seal_payload_len(const struct seal_header *h);

struct seal_options {
    const char *key_id;
    const char *entrypoint; /* NULL for an executable */
    const char *policy;     /* Lua text, or NULL */
    size_t policy_len;
    uint32_t chunk_size;
    EVP_PKEY *signer; /* Ed25519 private key, or NULL */
    bool progress;    /* show progress on stderr */
    uint16_t version; /* the format version to write; 0 for SEAL_VERSION */
};

/* Seals the bytes of in_fd (an executable) into out_fd. */
int seal_write(int in_fd, int out_fd, const struct secret *key, const struct seal_options *o,
               tether_error_t *err);

struct sealed {
    int fd;
    struct seal_header h;
    /* What the signature covers and policies see, hex: version 1's, the sha256 of header and
     * ciphertext; version 2's, over the header and the sha256 of each chunk. */
    char digest[65];
    /* The sha256 of the whole file (exe.sha256), hex; version 1 only, else "". */
    char file_sha256[65];
    bool has_signature;
    unsigned char signer_pub[32];
    unsigned char signature[64];
    char signer[80];      /* "ed25519:<sha256 of the public key>", or "" */
    struct memfile plain; /* what it is decrypted into, once made */
    bool reserving;       /* a thread is allocating plain's pages: reserver */
    pthread_t reserver;
};

/* The values a sealed file is known by, when the hash cache remembers them: the digest,
 * and for version 1 the file's sha256 (else ""). */
struct seal_digests {
    char file_sha256[65], digest[65];
};
/* Opens a sealed file: checks its header and length, and reads it once for its digest (and,
 * for version 1, the sha256 of the whole file in the same pass; version 2's on every CPU),
 * unless known gives them: the hash cache's, for a file only root may change, unchanged
 * since; and the trailer.
 * seal_decrypt reads the same descriptor again: give a file only root may write, or a
 * private copy (measure_exe_collect makes one of any other), so that the bytes decrypted
 * are the bytes hashed.
 *
 * With to_decrypt, from when a version 1 file is hashed on one CPU until decryption begins,
 * a thread on another makes the file the plaintext will fill and reserves its pages (from
 * 1 MiB to SEAL_RESERVE_MAX bytes, on two CPUs or more; else seal_decrypt makes the file),
 * so that decryption only copies.  Nothing is written to it before the key is released;
 * seal_close frees it when nothing was. */
#define SEAL_RESERVE_MAX (UINT64_C(256) << 20)
int seal_open(int fd, const struct seal_digests *known, bool to_decrypt, struct sealed *s,
              tether_error_t *err);
void seal_close(struct sealed *s);
/* The file as a whole, for telling whether it changed: its digest (header and payload) and
 * its trailer (signer and signature), hashed together, hex. */
void seal_identity(const struct sealed *s, char hex[65]);
/* Checks the signature against trusted Ed25519 public keys (PEM files).  With none
 * configured, a signature is checked against its own key only (it names a signer, it
 * proves no trust); with some, an unsigned file or another signer is refused. */
int seal_verify(struct sealed *s, const char *const *trusted, size_t n_trusted,
                const char **trusted_file, tether_error_t *err);
/* Decrypts into a file in memory only ("tether-sealed", core/memfile.h; with memfd_only, a
 * memfd), sized to the plaintext first, each chunk authenticated before its plaintext is
 * written at its place, on every CPU this process may use.  On failure nothing of it is
 * kept. */
int seal_decrypt(struct sealed *s, const struct secret *key, bool memfd_only, tether_error_t *err);
/* After seal_decrypt: the plaintext, closed to writes for good and with mode (unless 0), as a
 * descriptor that is then the caller's (memfile_finish). */
int seal_plaintext(struct sealed *s, mode_t mode, tether_error_t *err);
