/* Seal and unseal throughput against a raw single-core OpenSSL AES-256-GCM loop over the
 * same bytes, in the same run (the target: a ratio of at least 0.8).  A first
 * launch hashes every byte before any key is released (the digest that signatures and
 * policies need, and exe.sha256, both from one read), and that pass is sequential: sha256
 * alone bounds it, and its own ratio is printed beside.  A later launch of an unchanged file
 * (digests remembered by the hash cache) decrypts only, on every CPU.
 *
 *   bench_seal [MIB] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../supervisor/core/util.h"
#include "../../supervisor/seal.h"

static double raw_gcm(const unsigned char *buf, size_t len, const unsigned char *key, int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char *out = malloc(1 << 16), iv[12] = {0}, tag[16] = {0}, aad[41] = {0};
    uint64_t t0 = time_mono_ns();
    for (size_t off = 0; off < len; off += 1 << 16) {
        int n = (int)(len - off < (1 << 16) ? len - off : (1 << 16)), l;
        iv[11]++;
        EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, enc);
        EVP_CipherUpdate(ctx, NULL, &l, aad, sizeof aad);
        EVP_CipherUpdate(ctx, out, &l, buf + off, n);
        if (!enc)
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag);
        EVP_CipherFinal_ex(ctx, out + l, &l); /* the decrypt's tag check fails: same work */
        if (enc)
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
    }
    double s = (time_mono_ns() - t0) / 1e9;
    EVP_CIPHER_CTX_free(ctx);
    free(out);
    return len / s / (1 << 20);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* What the plaintext's memory costs before a byte is decrypted: the pages of the file it is
 * decrypted into allocated (fallocate), the MiB/s the kernel gives them at.  The writes
 * into it cannot be faster; its inode lock makes them one at a time whatever the threads.
 * private: whether it was a tmpfs of tether's own (core/memfile.h), not a memfd. */
static double alloc_plain(size_t len, bool *private)
{
    struct memfile m;
    tether_error_t err = NULL;
    if (memfile_new(&m, "alloc", len, false, &err) < 0) {
        fprintf(stderr, "bench_seal: %s\n", err->msg);
        exit(1);
    }
    *private = m.ro >= 0;
    uint64_t t0 = time_mono_ns();
    if (fallocate(m.fd, 0, 0, (off_t)len) < 0) {
        perror("bench_seal: fallocate");
        exit(1);
    }
    double s = (time_mono_ns() - t0) / 1e9;
    memfile_close(&m);
    return len / s / (1 << 20);
}

/* Whether the kernel gives a memfd huge pages: the bracketed word of shmem_enabled. */
static void shmem_enabled(char *out, size_t n)
{
    char buf[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof buf, f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    char *l = strchr(buf, '['), *r = l ? strchr(l, ']') : NULL;
    snprintf(out, n, "%.*s", l && r ? (int)(r - l - 1) : 7, l && r ? l + 1 : "unknown");
}

/* A launch's work on a sealed file: opened (hashed unless known gives its digests),
 * decrypted, and closed to writes; the MiB/s of plaintext.  s is left open. */
static double unseal_one(int fd, const struct seal_digests *known, const struct secret *key,
                         size_t len, struct sealed *s)
{
    tether_error_t err = NULL;
    uint64_t t0 = time_mono_ns();
    int plain = -1;
    if (seal_open(fd, known, true, s, &err) < 0 || seal_decrypt(s, key, false, &err) < 0 ||
        (plain = seal_plaintext(s, 0, &err)) < 0) {
        fprintf(stderr, "bench_seal: %s\n", err->msg);
        exit(1);
    }
    double mibs = len / ((time_mono_ns() - t0) / 1e9) / (1 << 20);
    close(plain);
    return mibs;
}

static double raw_sha256(const unsigned char *buf, size_t len)
{
    unsigned char md[32];
    uint64_t t0 = time_mono_ns();
    EVP_Digest(buf, len, md, NULL, EVP_sha256(), NULL);
    return len / ((time_mono_ns() - t0) / 1e9) / (1 << 20);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 64, len = mib << 20;
    int in = memfd_create("plain", 0), sealed = memfd_create("sealed", 0),
        sealed_v1 = memfd_create("sealed-v1", 0);
    unsigned char *buf = malloc(len);
    RAND_bytes(buf, (int)len);
    if (write(in, buf, len) != (ssize_t)len)
        return 1;
    struct secret *key;
    tether_error_t err = NULL;
    if (secret_new(32, &key, &err) < 0)
        return 1;
    RAND_bytes(key->data, 32);
    struct seal_options o = {.key_id = "bench"};

    double raw_enc = raw_gcm(buf, len, key->data, 1);
    lseek(in, 0, SEEK_SET);
    uint64_t t0 = time_mono_ns();
    if (seal_write(in, sealed, key, &o, &err) < 0) {
        fprintf(stderr, "bench_seal: %s\n", err->msg);
        return 1;
    }
    double seal = len / ((time_mono_ns() - t0) / 1e9) / (1 << 20);
    struct seal_options o1 = {.key_id = "bench", .version = 1};
    lseek(in, 0, SEEK_SET);
    if (seal_write(in, sealed_v1, key, &o1, &err) < 0) {
        fprintf(stderr, "bench_seal: %s\n", err->msg);
        return 1;
    }

    /* Each figure is the median of ROUNDS, interleaved: a single pass is at the mercy of
     * whatever else the machine does. */
    enum { ROUNDS = 7 };
    double raw_dec[ROUNDS], sha[ROUNDS], unseal[ROUNDS], again[ROUNDS], unseal_v1[ROUNDS],
        alloc[ROUNDS];
    struct sealed s;
    bool private = false;
    for (int k = 0; k < ROUNDS; k++) {
        raw_dec[k] = raw_gcm(buf, len, key->data, 0);
        sha[k] = raw_sha256(buf, len);
        alloc[k] = alloc_plain(len, &private);
        unseal[k] = unseal_one(sealed, NULL, key, len, &s);
        /* A later launch of the same file: the hash cache gives its digest. */
        struct seal_digests known;
        memcpy(known.digest, s.digest, sizeof known.digest);
        memcpy(known.file_sha256, s.file_sha256, sizeof known.file_sha256);
        seal_close(&s);
        unseal_v1[k] = unseal_one(sealed_v1, NULL, key, len, &s);
        seal_close(&s);
        again[k] = unseal_one(sealed, &known, key, len, &s);
        seal_close(&s);
    }
    double rd = median(raw_dec, ROUNDS), sh = median(sha, ROUNDS), un = median(unseal, ROUNDS),
           ag = median(again, ROUNDS), u1 = median(unseal_v1, ROUNDS), al = median(alloc, ROUNDS);
    char huge[32];
    shmem_enabled(huge, sizeof huge);
    printf("seal %.0f MiB/s vs raw AES-256-GCM %.0f MiB/s: ratio %.2f\n", seal, raw_enc,
           seal / raw_enc);
    const char *into = private ? "a private tmpfs (huge=within_size)" : "a memfd";
    printf("unseal, first launch (format 2: the digest, then decryption, each on %ld CPUs into "
           "%s) %.0f MiB/s vs raw %.0f MiB/s: ratio %.2f (sha256 alone: %.0f MiB/s, ratio "
           "%.2f)\n",
           sysconf(_SC_NPROCESSORS_ONLN), into, un, rd, un / rd, sh, sh / rd);
    printf("unseal, first launch of format 1 (one sha256 pass on one CPU for both digests) "
           "%.0f MiB/s vs raw %.0f MiB/s: ratio %.2f\n",
           u1, rd, u1 / rd);
    printf("unseal, digests remembered (decrypt only) %.0f MiB/s vs raw %.0f MiB/s: ratio %.2f\n",
           ag, rd, ag / rd);
    printf("the floor: the pages of %s allocated (fallocate; the host's shmem_enabled=%s) %.0f "
           "MiB/s vs raw %.0f MiB/s: ratio %.2f\n",
           into, huge, al, rd, al / rd);
    secret_free(key);
    free(buf);
    return 0;
}
