/* Cosign signatures of an OCI layout: a tiny layout is written in a temporary directory and
 * signed in the test with OpenSSL (ECDSA P-256 over a simple-signing payload, and Ed25519), as
 * `cosign sign --key` signs; good, wrong key, wrong digest, tampered, missing. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../measure/imgsig.h"
#include "../../supervisor/config.h"
#include "../../supervisor/core/base64.h"
#include "../../supervisor/core/util.h"
#include "test.h"

static char base[] = "/tmp/tether-imgsig-XXXXXX";
static int layout_fd = -1;
/* The image's manifest: any bytes will do, only their digest is signed. */
static char image_digest[7 + 65];

static char *at(const char *rel)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", base, rel);
    return buf[i];
}

static void put(const char *path, const void *data, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, data, n) < 0 || fchmod(fd, mode) < 0)
        printf("# put %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Writes a blob and returns its digest (static buffer, rotated). */
static const char *blob(const void *data, size_t n)
{
    static char d[4][7 + 65];
    static int i;
    i = (i + 1) % 4;
    char hex[65];
    sha256_hex(data, n, hex);
    snprintf(d[i], sizeof d[i], "sha256:%s", hex);
    char *path = xasprintf("%s/layout/blobs/sha256/%s", base, hex);
    put(path, data, n, 0644);
    free(path);
    return d[i];
}

static EVP_PKEY *keygen(const char *type, const char *pub_name)
{
    EVP_PKEY *k = strcmp(type, "EC") == 0    ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                  : strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                                             : EVP_PKEY_Q_keygen(NULL, NULL, type);
    FILE *f = fopen(at(pub_name), "w");
    PEM_write_PUBKEY(f, k);
    fclose(f);
    chmod(at(pub_name), 0644);
    return k;
}

static char *sign_b64(EVP_PKEY *k, const char *msg, size_t n)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ed = EVP_PKEY_is_a(k, "ED25519");
    unsigned char sig[256];
    size_t siglen = sizeof sig;
    if (EVP_DigestSignInit(ctx, NULL, ed ? NULL : EVP_sha256(), NULL, k) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)msg, n) != 1)
        printf("# signing failed\n");
    EVP_MD_CTX_free(ctx);
    return base64_encode(sig, siglen);
}

static char *payload_for(const char *digest, const char *ref)
{
    return xasprintf("{\"critical\":{\"identity\":{\"docker-reference\":\"%s\"},\"image\":{"
                     "\"docker-manifest-digest\":\"%s\"},\"type\":\"cosign container image "
                     "signature\"},\"optional\":null}",
                     ref, digest);
}

/* The signature manifest of one or more (payload, signature) pairs; returns its digest. */
static const char *sig_manifest(size_t n, char *const payloads[], char *const sigs[])
{
    const char *cfg = blob("{}", 2);
    char *layers = xstrdup("");
    for (size_t i = 0; i < n; i++) {
        const char *d = blob(payloads[i], strlen(payloads[i]));
        char *l = xasprintf(
            "%s%s{\"mediaType\":\"" IMGSIG_PAYLOAD_MEDIA_TYPE
            "\",\"size\":%zu,\"digest\":\"%s\",\"annotations\":{\"" IMGSIG_SIGNATURE_ANNOTATION
            "\":\"%s\"}}",
            layers, i ? "," : "", strlen(payloads[i]), d, sigs[i]);
        free(layers);
        layers = l;
    }
    char *m = xasprintf("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest."
                        "v1+json\",\"config\":{\"mediaType\":\"application/"
                        "vnd.oci.image.config.v1+json\",\"size\":2,\"digest\":\"%s\"},"
                        "\"layers\":[%s]}",
                        cfg, layers);
    const char *d = blob(m, strlen(m));
    free(m);
    free(layers);
    return d;
}

/* index.json naming the image and, when sig is given, its signature manifest under the tag
 * cosign uses (or, with kind, the annotation `cosign save` writes). */
static void index_write(const char *sig, bool kind)
{
    char *sig_entry =
        sig == NULL ? xstrdup("")
        : kind      ? xasprintf(",{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                                     "\"digest\":\"%s\",\"size\":1,\"annotations\":{\"kind\":"
                                     "\"dev.cosignproject.cosign/sigs\"}}",
                                sig)
                    : xasprintf(",{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                                     "\"digest\":\"%s\",\"size\":1,\"annotations\":{\"org.opencontainers."
                                     "image.ref.name\":\"sha256-%s.sig\"}}",
                                sig, image_digest + 7);
    char *idx = xasprintf("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
                          "vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":1,"
                          "\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}%s]}",
                          image_digest, sig_entry);
    put(at("layout/index.json"), idx, strlen(idx), 0644);
    free(idx);
    free(sig_entry);
}

static cJSON *signers(const char *a, const char *b)
{
    cJSON *s = cJSON_CreateArray();
    if (a)
        cJSON_AddItemToArray(s, cJSON_CreateString(at(a)));
    if (b)
        cJSON_AddItemToArray(s, cJSON_CreateString(at(b)));
    return s;
}

/* Verifies with the given trusted keys: the array, or NULL (and the message in why). */
static cJSON *verify(cJSON *trusted, const char *ref, char *why, size_t n)
{
    tether_error_t err = NULL;
    cJSON *out = NULL;
    why[0] = '\0';
    if (image_signatures_verify(layout_fd, image_digest, ref, trusted, &out, &err) < 0) {
        snprintf(why, n, "%s", err->msg);
        error_free(&err);
    }
    cJSON_Delete(trusted);
    return out;
}

static const cJSON *field(const cJSON *sigs, int i, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sigs, i), name);
}

static void test_parsers(void)
{
    struct imgsig_payload p;
    tether_error_t err = NULL;
    char *good = payload_for(image_digest, "example.com/app:v1");
    CHECK(imgsig_payload_parse(good, strlen(good), &p, &err) == 0, "a cosign payload parses");
    CHECK_STR(p.digest, image_digest, "its digest");
    CHECK_STR(p.docker_reference, "example.com/app:v1", "its reference");
    cJSON_Delete(p.doc);
    free(good);

    static const char *const bad[] = {
        "[]",
        "{\"critical\":{}}",
        "{\"critical\":{\"type\":\"x\",\"image\":{\"docker-manifest-digest\":\"sha256:00\"}}}",
        /* a second digest: Go's decoder would take the last, cJSON the first */
        "{\"critical\":{\"identity\":{\"docker-reference\":\"a\"},\"image\":{\"docker-manifest-"
        "digest\":\"sha256:"
        "0000000000000000000000000000000000000000000000000000000000000000\",\"docker-manifest-"
        "digest\":\"sha256:"
        "1111111111111111111111111111111111111111111111111111111111111111\"},\"type\":\"cosign "
        "container image signature\"}}",
        /* the same key in another case, which Go's decoder matches too */
        "{\"critical\":{\"identity\":{\"docker-reference\":\"a\"},\"image\":{\"docker-manifest-"
        "digest\":\"sha256:"
        "0000000000000000000000000000000000000000000000000000000000000000\",\"Docker-manifest-"
        "digest\":\"sha256:"
        "1111111111111111111111111111111111111111111111111111111111111111\"},\"type\":\"cosign "
        "container image signature\"}}",
        /* no identity */
        "{\"critical\":{\"image\":{\"docker-manifest-digest\":\"sha256:"
        "0000000000000000000000000000000000000000000000000000000000000000\"},\"type\":\"cosign "
        "container image signature\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = imgsig_payload_parse(bad[i], strlen(bad[i]), &p, &err);
        CHECK(rc < 0 && p.doc == NULL, "bad payload %zu is refused: %s", i,
              err ? err->msg : "(accepted)");
        error_free(&err);
    }

    struct imgsig_layer *layers;
    size_t n;
    const char *m = "{\"layers\":[{\"mediaType\":\"application/vnd.dsse.envelope.v1+json\","
                    "\"digest\":\"x\"},{\"mediaType\":\"" IMGSIG_PAYLOAD_MEDIA_TYPE "\","
                    "\"digest\":\"sha256:"
                    "0000000000000000000000000000000000000000000000000000000000000000\"}]}";
    CHECK(imgsig_manifest_parse(m, strlen(m), &layers, &n, &err) == 0 && n == 1 &&
              layers[0].signature == NULL && layers[0].size == -1,
          "a signature manifest: other media types are skipped, a missing annotation is NULL");
    imgsig_layers_free(layers, n);
    m = "{\"layers\":[{\"mediaType\":\"" IMGSIG_PAYLOAD_MEDIA_TYPE "\",\"digest\":\"md5:00\"}]}";
    CHECK(imgsig_manifest_parse(m, strlen(m), &layers, &n, &err) < 0,
          "a layer digest that is not sha256 is an error");
    error_free(&err);

    char **ds;
    CHECK(imgsig_index_find("{}", 2, image_digest, &ds, &n, &err) < 0,
          "index.json without manifests is an error");
    error_free(&err);
    CHECK(imgsig_index_find("{\"manifests\":[]}", 16, "latest", &ds, &n, &err) < 0,
          "a manifest digest that is not sha256 is an error");
    error_free(&err);
}

int main(void)
{
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    mkdir(at("layout"), 0755);
    mkdir(at("layout/blobs"), 0755);
    mkdir(at("layout/blobs/sha256"), 0755);
    put(at("layout/oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}", 30, 0644);
    snprintf(image_digest, sizeof image_digest, "%s", blob("{\"image\":1}", 11));
    layout_fd = open(at("layout"), O_PATH | O_DIRECTORY | O_CLOEXEC);

    test_parsers();

    EVP_PKEY *ec = keygen("EC", "ec.pub");
    EVP_PKEY *ed = keygen("ED25519", "ed.pub");
    EVP_PKEY *other = keygen("EC", "other.pub");
    EVP_PKEY *rsa = keygen("RSA", "rsa.pub");
    char why[512];

    /* missing: no signature manifest at all */
    index_write(NULL, false);
    cJSON *sigs = verify(signers("ec.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs && cJSON_GetArraySize(sigs) == 0, "an unsigned image: no signatures (%s)", why);
    CHECK(!image_signatures_any_valid(sigs), "an unsigned image has no valid signature");
    cJSON_Delete(sigs);

    /* good: ECDSA P-256 */
    char *payload = payload_for(image_digest, "example.com/app:v1");
    char *sig = sign_b64(ec, payload, strlen(payload));
    index_write(sig_manifest(1, &payload, &sig), false);
    sigs = verify(signers("ed.pub", "ec.pub"), "example.com/app:v1", why, sizeof why);
    CHECK(sigs && cJSON_GetArraySize(sigs) == 1, "one signature (%s)", why);
    CHECK(cJSON_IsTrue(field(sigs, 0, "verified")), "ECDSA P-256: verified");
    CHECK(cJSON_IsTrue(field(sigs, 0, "digest_matches")), "ECDSA P-256: the digest matches");
    CHECK_STR(cJSON_GetStringValue(field(sigs, 0, "signer")), at("ec.pub"),
              "the signer is the trusted key that verified it");
    CHECK(strncmp(cJSON_GetStringValue(field(sigs, 0, "signer_fingerprint")) ?: "", "sha256:", 7) ==
              0,
          "with its fingerprint");
    CHECK_STR(cJSON_GetStringValue(field(sigs, 0, "docker_reference")), "example.com/app:v1",
              "the payload's reference");
    CHECK(cJSON_IsTrue(field(sigs, 0, "reference_matches")), "it names the reference asked for");
    CHECK(cJSON_IsNull(field(sigs, 0, "error")), "no error");
    CHECK(cJSON_IsObject(field(sigs, 0, "payload")), "the payload, parsed");
    CHECK(image_signatures_any_valid(sigs), "a valid signature");
    cJSON_Delete(sigs);
    sigs = verify(signers("ec.pub", NULL), "example.com/other:v1", why, sizeof why);
    CHECK(cJSON_IsFalse(field(sigs, 0, "reference_matches")), "another reference: no match");
    cJSON_Delete(sigs);
    sigs = verify(signers("ec.pub", NULL), "example.com/app@sha256:00", why, sizeof why);
    CHECK(cJSON_IsTrue(field(sigs, 0, "reference_matches")), "by digest: the repository matches");
    cJSON_Delete(sigs);

    /* the same signature stored the way `cosign save` stores it */
    index_write(sig_manifest(1, &payload, &sig), true);
    sigs = verify(signers("ec.pub", NULL), NULL, why, sizeof why);
    CHECK(image_signatures_any_valid(sigs), "cosign save's kind annotation is found (%s)", why);
    CHECK(cJSON_IsNull(field(sigs, 0, "reference_matches")), "no reference asked: null");
    cJSON_Delete(sigs);

    /* wrong key: a signature by a key the node does not trust */
    char *bad_sig = sign_b64(other, payload, strlen(payload));
    index_write(sig_manifest(1, &payload, &bad_sig), false);
    sigs = verify(signers("ec.pub", "ed.pub"), NULL, why, sizeof why);
    CHECK(sigs && cJSON_IsFalse(field(sigs, 0, "verified")), "wrong key: not verified (%s)", why);
    CHECK(cJSON_IsNull(field(sigs, 0, "signer")), "wrong key: no signer");
    CHECK(cJSON_IsTrue(field(sigs, 0, "digest_matches")),
          "wrong key: the (unverified) payload is still shown");
    CHECK(cJSON_IsString(field(sigs, 0, "error")), "wrong key: an error says why");
    CHECK(!image_signatures_any_valid(sigs), "wrong key: no valid signature");
    cJSON_Delete(sigs);
    sigs = verify(signers(NULL, NULL), NULL, why, sizeof why);
    CHECK(sigs && !image_signatures_any_valid(sigs), "no trusted keys: nothing verifies");
    cJSON_Delete(sigs);

    /* wrong digest: a good signature over another image's payload */
    char *other_payload =
        payload_for("sha256:1111111111111111111111111111111111111111111111111111111111111111",
                    "example.com/app:v1");
    char *other_sig = sign_b64(ec, other_payload, strlen(other_payload));
    index_write(sig_manifest(1, &other_payload, &other_sig), false);
    sigs = verify(signers("ec.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs && cJSON_IsTrue(field(sigs, 0, "verified")), "wrong digest: the signature verifies");
    CHECK(cJSON_IsFalse(field(sigs, 0, "digest_matches")), "wrong digest: does not match");
    CHECK(!image_signatures_any_valid(sigs), "wrong digest: no valid signature");
    cJSON_Delete(sigs);

    /* Ed25519, next to a bad one: each entry on its own */
    char *ed_sig = sign_b64(ed, payload, strlen(payload));
    char *two_p[] = {payload, payload}, *two_s[] = {bad_sig, ed_sig};
    index_write(sig_manifest(2, two_p, two_s), false);
    sigs = verify(signers("ec.pub", "ed.pub"), NULL, why, sizeof why);
    CHECK(sigs && cJSON_GetArraySize(sigs) == 2, "two signatures");
    CHECK(cJSON_IsFalse(field(sigs, 0, "verified")), "the first (wrong key) is not verified");
    CHECK(cJSON_IsTrue(field(sigs, 1, "verified")), "Ed25519: verified");
    CHECK_STR(cJSON_GetStringValue(field(sigs, 1, "signer")), at("ed.pub"), "Ed25519: signer");
    CHECK(image_signatures_any_valid(sigs), "one valid signature is enough");
    cJSON_Delete(sigs);

    /* a tampered signature, and a tampered payload blob */
    char *flipped = xstrdup(sig);
    flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
    index_write(sig_manifest(1, &payload, &flipped), false);
    sigs = verify(signers("ec.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs && !image_signatures_any_valid(sigs), "a tampered signature does not verify");
    cJSON_Delete(sigs);
    index_write(sig_manifest(1, &payload, &sig), false);
    char hex[65];
    sha256_hex(payload, strlen(payload), hex);
    char *path = xasprintf("layout/blobs/sha256/%s", hex);
    char *forged = payload_for(image_digest, "example.com/bad:v1"); /* the same size */
    put(at(path), forged, strlen(forged), 0644);
    sigs = verify(signers("ec.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs && !image_signatures_any_valid(sigs) && cJSON_IsNull(field(sigs, 0, "payload")),
          "a payload blob that does not match its digest is not used");
    CHECK(strstr(cJSON_GetStringValue(field(sigs, 0, "error")) ?: "", "digest") != NULL,
          "and the error says so: %s", cJSON_GetStringValue(field(sigs, 0, "error")));
    cJSON_Delete(sigs);
    unlink(at(path));
    sigs = verify(signers("ec.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs && !image_signatures_any_valid(sigs), "a missing payload blob: not valid");
    cJSON_Delete(sigs);
    put(at(path), payload, strlen(payload), 0644);
    free(path);
    free(forged);

    /* the trusted keys themselves */
    sigs = verify(signers("rsa.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs == NULL && strstr(why, "rsa.pub") && strstr(why, "neither"),
          "an RSA key is refused by name: %s", why);
    put(at("junk.pub"), "not a key\n", 10, 0644);
    sigs = verify(signers("junk.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs == NULL && strstr(why, "junk.pub"), "a file that is no key: %s", why);
    chmod(at("ec.pub"), 0666);
    sigs = verify(signers("ec.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs == NULL && strstr(why, "ec.pub") && strstr(why, "refusing"),
          "a key file others may write is refused: %s", why);
    chmod(at("ec.pub"), 0644);
    sigs = verify(signers("absent.pub", NULL), NULL, why, sizeof why);
    CHECK(sigs == NULL && strstr(why, "absent.pub"), "an absent key file: %s", why);

    /* the configuration keys */
    struct config cfg;
    tether_error_t err = NULL;
    const char *conf = "{\"trusted_image_signers\":[\"/etc/tether/img.pub\"],"
                       "\"require_signed_images\":true}";
    CHECK(config_parse("t", conf, strlen(conf), &cfg, &err) == 0 && cfg.require_signed_images &&
              cJSON_GetArraySize(cfg.trusted_image_signers) == 1,
          "trusted_image_signers and require_signed_images are read");
    config_clear(&cfg);
    conf = "{\"trusted_image_signers\":\"/etc/tether/img.pub\"}";
    CHECK(config_parse("t", conf, strlen(conf), &cfg, &err) < 0 &&
              strstr(err->msg, "trusted_image_signers"),
          "a wrong type names the key: %s", err ? err->msg : "");
    error_free(&err);
    config_clear(&cfg);

    free(payload);
    free(sig);
    free(bad_sig);
    free(other_payload);
    free(other_sig);
    free(ed_sig);
    free(flipped);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(other);
    EVP_PKEY_free(rsa);
    close(layout_fd);
    char *rm = xasprintf("rm -rf '%s'", base);
    if (system(rm) != 0)
        printf("# could not remove %s\n", base);
    free(rm);
    return test_done();
}
