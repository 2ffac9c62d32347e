/* The image layout's pure parsers: names, descriptors, index, manifest, config, ocicrypt's
 * options, layer member names and whiteouts, users, and the JWE parser. */
#include <string.h>

#include "../../supervisor/image/image.h"
#include "../../supervisor/image/jwe.h"
#include "test.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST "sha256:" D64
#define DESC(mt) "{\"mediaType\":\"" mt "\",\"digest\":\"" DIGEST "\",\"size\":7"
#define MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"

static int fails(int rc, tether_error_t *err, const char *needle)
{
    int ok = rc < 0 && *err != NULL && strstr((*err)->msg, needle) != NULL;
    if (!ok)
        printf("#   error: %s\n", *err ? (*err)->msg : "(none)");
    error_free(err);
    return ok;
}

static void names(void)
{
    tether_error_t err = NULL;
    char *dir, *ref;
    CHECK(image_parse_name("oci:/srv/img:app:1.0", &dir, &ref, &err) == 0, "oci:DIR:REF");
    CHECK_STR(dir, "/srv/img", "the directory ends at the first colon");
    CHECK_STR(ref, "app:1.0", "the reference keeps the rest");
    free(dir), free(ref);
    CHECK(image_parse_name("oci:img", &dir, &ref, &err) == 0 && ref == NULL, "no reference");
    free(dir);
    CHECK(fails(image_parse_name("docker://x", &dir, &ref, &err), &err, "oci:DIR"), "transport");
    CHECK(fails(image_parse_name("oci:", &dir, &ref, &err), &err, "no directory"), "empty dir");
    CHECK(fails(image_parse_name("oci:d:", &dir, &ref, &err), &err, "empty reference"),
          "empty ref");
    CHECK(fails(image_parse_name("oci:d:a b", &dir, &ref, &err), &err, "printable"), "space");
}

static void descriptors_and_index(void)
{
    tether_error_t err = NULL;
    struct image_descriptor d;
    const char *one = "{\"schemaVersion\":2,\"manifests\":[" DESC(
        MT_MANIFEST) ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"app\"}}]}";
    CHECK(image_parse_index(one, strlen(one), "app", &d, &err) == 0, "by ref");
    CHECK_STR(d.digest, DIGEST, "its digest");
    CHECK(d.size == 7, "its size");
    image_descriptor_clear(&d);
    CHECK(image_parse_index(one, strlen(one), NULL, &d, &err) == 0, "the only manifest");
    image_descriptor_clear(&d);
    CHECK(
        fails(image_parse_index(one, strlen(one), "other", &d, &err), &err, "no manifest is named"),
        "unknown ref");
    const char *two =
        "{\"schemaVersion\":2,\"manifests\":[" DESC(MT_MANIFEST) "}," DESC(MT_MANIFEST) "}]}";
    CHECK(fails(image_parse_index(two, strlen(two), NULL, &d, &err), &err, "name one"),
          "two manifests, no ref");
    const char *nested = "{\"schemaVersion\":2,\"manifests\":[" DESC(
        "application/vnd.oci.image.index.v1+json") "}]}";
    CHECK(fails(image_parse_index(nested, strlen(nested), NULL, &d, &err), &err, "nested"),
          "a nested index");
    static const char *const bad[] = {
        "{\"schemaVersion\":1,\"manifests\":[]}",
        "{\"schemaVersion\":2,\"manifests\":{}}",
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
        "\",\"digest\":\"sha512:" D64 "\",\"size\":1}]}",
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
        "\",\"digest\":\"sha256:" D64 "0\",\"size\":1}]}",
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
        "\",\"digest\":\"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\","
        "\"size\":1}]}",
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
        "\",\"digest\":\"" DIGEST "\",\"size\":-1}]}",
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MT_MANIFEST
        "\",\"digest\":\"" DIGEST "\",\"size\":1.5}]}",
        "{\"schemaVersion\":2,\"manifests\":[" DESC(MT_MANIFEST) ",\"annotations\":{\"a\":1}}]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = image_parse_index(bad[i], strlen(bad[i]), NULL, &d, &err);
        CHECK(rc < 0 && err != NULL, "bad index %zu refused: %s", i, err ? err->msg : "accepted");
        error_free(&err);
    }
}

static void manifests(void)
{
    tether_error_t err = NULL;
    struct image_manifest m;
    const char *ok =
        "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST
        "\",\"config\":" DESC(MT_CONFIG) "},\"layers\":[" DESC(MT_GZIP) "}," DESC(
            MT_GZIP
            "+encrypted") ",\"annotations\":{\"org.opencontainers.image.enc.keys.jwe\":\"e30=\","
                          "\"org.opencontainers.image.enc.pubopts\":\"e30=\"}}],\"annotations\":{"
                          "\"k\":\"v\"}}";
    CHECK(image_parse_manifest(ok, strlen(ok), &m, &err) == 0, "a manifest: %s",
          err ? err->msg : "");
    CHECK(m.n_layers == 2 && m.layers[0].compression == IMAGE_GZIP && !m.layers[0].encrypted &&
              m.layers[1].encrypted && m.layers[0].fd == -1,
          "its layers");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(m.annotations, "k")), "v", "annotations");
    image_manifest_clear(&m);
    const char *noann = "{\"schemaVersion\":2,\"config\":" DESC(MT_CONFIG) "},\"layers\":[" DESC(
        MT_GZIP "+encrypted") "}]}";
    CHECK(fails(image_parse_manifest(noann, strlen(noann), &m, &err), &err,
                "an encrypted layer needs"),
          "an encrypted layer without its annotations");
    const char *nolayers = "{\"schemaVersion\":2,\"config\":" DESC(MT_CONFIG) "},\"layers\":[]}";
    CHECK(fails(image_parse_manifest(nolayers, strlen(nolayers), &m, &err), &err, "1 to"),
          "no layers");
    const char *foreign = "{\"schemaVersion\":2,\"config\":" DESC(MT_CONFIG) "},\"layers\":[" DESC(
        "application/vnd.oci.image.layer.nondistributable.v1.tar") "}]}";
    CHECK(fails(image_parse_manifest(foreign, strlen(foreign), &m, &err), &err, "not a layer"),
          "an unknown layer type");
    const char *cfgtype =
        "{\"schemaVersion\":2,\"config\":" DESC(MT_GZIP) "},\"layers\":[" DESC(MT_GZIP) "}]}";
    CHECK(fails(image_parse_manifest(cfgtype, strlen(cfgtype), &m, &err), &err, "media type"),
          "a config of the wrong type");

    enum image_compression c;
    bool enc;
    CHECK(image_media_type("application/vnd.oci.image.layer.v1.tar", &c, &enc) == 0 &&
              c == IMAGE_TAR && !enc,
          "tar");
    CHECK(image_media_type("application/vnd.oci.image.layer.v1.tar+zstd+encrypted", &c, &enc) ==
                  0 &&
              c == IMAGE_ZSTD && enc,
          "zstd, encrypted");
    CHECK(image_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip", &c, &enc) == 0 &&
              c == IMAGE_GZIP,
          "Docker's gzip layer");
    CHECK(image_media_type("application/vnd.oci.image.layer.v1.tar+bzip2", &c, &enc) < 0,
          "bzip2 is unknown");
    CHECK(image_media_type("+encrypted", &c, &enc) < 0, "a bare suffix");
}

static void configs(void)
{
    tether_error_t err = NULL;
    struct image_config c;
    const char *ok = "{\"config\":{\"Entrypoint\":[\"/bin/app\"],\"Cmd\":null,\"Env\":[\"A=1\","
                     "\"PATH=/bin\"],\"User\":\"app:staff\",\"WorkingDir\":\"/srv\"}}";
    CHECK(image_parse_config(ok, strlen(ok), &c, &err) == 0, "a config");
    CHECK_STR(c.entrypoint[0], "/bin/app", "Entrypoint");
    CHECK(c.entrypoint[1] == NULL && c.cmd == NULL, "Cmd null");
    CHECK_STR(c.env[1], "PATH=/bin", "Env");
    CHECK_STR(c.user, "app:staff", "User");
    CHECK_STR(c.working_dir, "/srv", "WorkingDir");
    image_config_clear(&c);
    CHECK(image_parse_config("{}", 2, &c, &err) == 0 && c.entrypoint == NULL && c.user == NULL,
          "no config section");
    static const char *const bad[] = {
        "{\"config\":{\"Cmd\":\"sh\"}}",         "{\"config\":{\"Env\":[\"NOEQUALS\"]}}",
        "{\"config\":{\"Env\":[\"=x\"]}}",       "{\"config\":{\"User\":7}}",
        "{\"config\":{\"WorkingDir\":\"rel\"}}", "{\"config\":[]}",
        "{\"config\":{\"Entrypoint\":[1]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = image_parse_config(bad[i], strlen(bad[i]), &c, &err);
        CHECK(rc < 0 && err != NULL, "bad config %zu refused: %s", i, err ? err->msg : "accepted");
        error_free(&err);
    }
}

static void options(void)
{
    tether_error_t err = NULL;
    unsigned char hmac[32];
    /* {"cipher":"AES_256_CTR_HMAC_SHA256","hmac":"<32 x 0x01>","cipheroptions":{}} */
    const char *pub =
        "eyJjaXBoZXIiOiJBRVNfMjU2X0NUUl9ITUFDX1NIQTI1NiIsImhtYWMiOiJBUUVCQVFFQkFR"
        "RUJBUUVCQVFFQkFRRUJBUUVCQVFFQkFRRUJBUUVCQVFFPSIsImNpcGhlcm9wdGlvbnMiOnt9fQ==";
    CHECK(image_parse_pubopts(pub, hmac, &err) == 0, "pubopts: %s", err ? err->msg : "");
    CHECK(hmac[0] == 1 && hmac[31] == 1, "its HMAC");
    /* {"cipher":"AES_128_GCM","hmac":""} */
    CHECK(fails(image_parse_pubopts("eyJjaXBoZXIiOiJBRVNfMTI4X0dDTSIsImhtYWMiOiIifQ==", hmac, &err),
                &err, "not AES_256_CTR"),
          "another cipher");
    CHECK(fails(image_parse_pubopts("not base64!", hmac, &err), &err, "base64"), "not base64");

    struct secret *key;
    unsigned char nonce[16];
    char digest[IMAGE_DIGEST_LEN + 1];
    const char *priv =
        "{\"symkey\":\"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\","
        "\"cipheroptions\":{\"nonce\":\"AwMDAwMDAwMDAwMDAwMDAw==\"},\"digest\":\"" DIGEST "\"}";
    CHECK(image_parse_privopts((const unsigned char *)priv, strlen(priv), &key, nonce, digest,
                               &err) == 0,
          "privopts: %s", err ? err->msg : "");
    CHECK(key && key->len == 32 && key->data[0] == 2 && nonce[15] == 3, "the key and the nonce");
    CHECK_STR(digest, DIGEST, "the plaintext's digest");
    secret_free(key);
    const char *short_key = "{\"symkey\":\"AgIC\",\"cipheroptions\":{\"nonce\":"
                            "\"AwMDAwMDAwMDAwMDAwMDAw==\"}}";
    CHECK(fails(image_parse_privopts((const unsigned char *)short_key, strlen(short_key), &key,
                                     nonce, digest, &err),
                &err, "32 bytes"),
          "a short key");
    CHECK(secret_live() == 0, "no secret left behind");

    unsigned char out[16];
    CHECK(image_base64_decode("QQ==", 4, false, out) == 1 && out[0] == 'A', "std base64");
    CHECK(image_base64_decode("QR==", 4, false, out) < 0, "non-zero left-over bits");
    CHECK(image_base64_decode("_-8", 3, true, out) == 2, "base64url, unpadded");
    CHECK(image_base64_decode("Q", 1, true, out) < 0, "a lone character");
}

static void entries(void)
{
    char *t;
    CHECK(image_entry_name("./usr/bin/app", &t) == IMAGE_ENTRY_FILE, "a file");
    CHECK_STR(t, "usr/bin/app", "normalised");
    free(t);
    CHECK(image_entry_name("/a//b/./c/", &t) == IMAGE_ENTRY_FILE, "slashes and dots");
    CHECK_STR(t, "a/b/c", "normalised");
    free(t);
    CHECK(image_entry_name("./", &t) == IMAGE_ENTRY_FILE, "the root");
    CHECK_STR(t, "", "is empty");
    free(t);
    CHECK(image_entry_name("etc/.wh.passwd", &t) == IMAGE_ENTRY_WHITEOUT, "a whiteout");
    CHECK_STR(t, "etc/passwd", "what it removes");
    free(t);
    CHECK(image_entry_name(".wh.etc", &t) == IMAGE_ENTRY_WHITEOUT, "at the root");
    CHECK_STR(t, "etc", "what it removes");
    free(t);
    CHECK(image_entry_name("./var/cache/.wh..wh..opq", &t) == IMAGE_ENTRY_OPAQUE, "opaque");
    CHECK_STR(t, "var/cache", "the directory it empties");
    free(t);
    CHECK(image_entry_name(".wh..wh..opq", &t) == IMAGE_ENTRY_OPAQUE, "opaque root");
    CHECK_STR(t, "", "the root");
    free(t);
    CHECK(image_entry_name("a/.wh..hidden", &t) == IMAGE_ENTRY_WHITEOUT, "a dot file's whiteout");
    CHECK_STR(t, "a/.hidden", "what it removes");
    free(t);
    CHECK(image_entry_name("a/.wh.", &t) < 0, "an empty whiteout");
    CHECK(image_entry_name("a/.wh...", &t) < 0, "a whiteout of ..");
    CHECK(image_entry_name("a/.wh..", &t) < 0, "a whiteout of .");
    CHECK(image_entry_name("a/.wh..wh.x", &t) < 0, "another .wh..wh. name");
    CHECK(image_entry_name("../etc/passwd", &t) < 0, "a .. component");
    CHECK(image_entry_name("a/../../.wh.etc", &t) < 0, "a whiteout that climbs");
    CHECK(image_entry_name("a/b.wh.c", &t) == IMAGE_ENTRY_FILE, "a name merely holding .wh.");
    free(t);
}

static void users(void)
{
    tether_error_t err = NULL;
    uint32_t uid, gid;
    const char *pw = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbad:x:zz:1\n";
    const char *gr = "root:x:0:\nstaff:x:50:app\n";
    CHECK(image_resolve_user("1234", NULL, NULL, &uid, &gid, &err) == 0 && uid == 1234 && gid == 0,
          "a number");
    CHECK(image_resolve_user("1234:56", NULL, NULL, &uid, &gid, &err) == 0 && gid == 56, "uid:gid");
    CHECK(image_resolve_user("app", pw, gr, &uid, &gid, &err) == 0 && uid == 1000 && gid == 1001,
          "a name takes its passwd gid");
    CHECK(image_resolve_user("app:staff", pw, gr, &uid, &gid, &err) == 0 && gid == 50,
          "name:group");
    CHECK(image_resolve_user("0:staff", pw, gr, &uid, &gid, &err) == 0 && uid == 0 && gid == 50,
          "uid:group");
    CHECK(fails(image_resolve_user("nobody", pw, gr, &uid, &gid, &err), &err, "/etc/passwd"),
          "an unknown name");
    CHECK(fails(image_resolve_user("ap", pw, gr, &uid, &gid, &err), &err, "/etc/passwd"),
          "a prefix of a name is no name");
    CHECK(fails(image_resolve_user("bad", pw, gr, &uid, &gid, &err), &err, "/etc/passwd"),
          "a malformed entry");
    CHECK(fails(image_resolve_user("app", NULL, NULL, &uid, &gid, &err), &err, "/etc/passwd"),
          "no passwd at all");
    CHECK(fails(image_resolve_user("1:nogroup", pw, gr, &uid, &gid, &err), &err, "/etc/group"),
          "an unknown group");
    CHECK(fails(image_resolve_user("4294967295", pw, gr, &uid, &gid, &err), &err, "/etc/passwd"),
          "(uid_t)-1 is no uid");
}

static void jwes(void)
{
    tether_error_t err = NULL;
    struct jwe j;
    /* protected {"alg":"RSA-OAEP","enc":"A256GCM"}, flattened */
    const char *flat = "{\"protected\":\"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ\","
                       "\"encrypted_key\":\"AAAA\",\"iv\":\"AAAAAAAAAAAAAAAA\","
                       "\"ciphertext\":\"AAAA\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA\"}";
    CHECK(jwe_parse(flat, strlen(flat), &j, &err) == 0, "flattened: %s", err ? err->msg : "");
    CHECK(j.n_recipients == 1 && j.recipients[0].alg == JWE_RSA_OAEP &&
              j.recipients[0].encrypted_key.len == 3 && j.iv.len == 12 && j.tag.len == 16,
          "its recipient");
    CHECK_STR(j.aad, "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ", "the AAD is the header");
    jwe_clear(&j);
    /* protected {"enc":"A256GCM"}; recipients: PGP-like (ignored) and ECDH-ES */
    const char *general =
        "{\"protected\":\"eyJlbmMiOiJBMjU2R0NNIn0\",\"recipients\":[{\"header\":{\"alg\":\"X\"},"
        "\"encrypted_key\":\"AAAA\"},{\"header\":{\"alg\":\"ECDH-ES+A256KW\",\"epk\":{\"kty\":"
        "\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"},\"apu\":\"QQ\"},"
        "\"encrypted_key\":\"AAAA\"}],\"iv\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"\","
        "\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"aad\":\"QQ\"}";
    CHECK(jwe_parse(general, strlen(general), &j, &err) == 0, "general: %s", err ? err->msg : "");
    CHECK(j.n_recipients == 1 && j.recipients[0].alg == JWE_ECDH_ES_A256KW &&
              strcmp(j.recipients[0].crv, "P-256") == 0 && j.recipients[0].apu.len == 1,
          "the ECDH-ES recipient, the other skipped");
    CHECK_STR(j.aad, "eyJlbmMiOiJBMjU2R0NNIn0.QQ", "the AAD with aad");
    jwe_clear(&j);
    static const char *const bad[] = {
        /* A128GCM */
        "{\"protected\":\"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkExMjhHQ00ifQ\",\"encrypted_key\":"
        "\"AAAA\",\"iv\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"\",\"tag\":"
        "\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        /* zip */
        "{\"protected\":\"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00iLCJ6aXAiOiJERUYifQ\","
        "\"encrypted_key\":\"AAAA\",\"iv\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"\",\"tag\":"
        "\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        /* alg twice: protected and per recipient */
        "{\"protected\":\"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ\",\"header\":{\"alg\":"
        "\"RSA-OAEP\"},\"encrypted_key\":\"AAAA\",\"iv\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"\","
        "\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        /* a short iv */
        "{\"protected\":\"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ\",\"encrypted_key\":"
        "\"AAAA\",\"iv\":\"AAAA\",\"ciphertext\":\"\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        /* padding in base64url */
        "{\"protected\":\"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ==\",\"encrypted_key\":"
        "\"AAAA\",\"iv\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"\",\"tag\":"
        "\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        /* no recipient this code can open */
        "{\"protected\":\"eyJlbmMiOiJBMjU2R0NNIn0\",\"recipients\":[{\"header\":{\"alg\":\"dir\"}}]"
        ","
        "\"iv\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        /* ECDH-ES without an epk */
        "{\"protected\":\"eyJlbmMiOiJBMjU2R0NNIn0\",\"header\":{\"alg\":\"ECDH-ES+A256KW\"},"
        "\"encrypted_key\":\"AAAA\",\"iv\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"\",\"tag\":"
        "\"AAAAAAAAAAAAAAAAAAAAAA\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = jwe_parse(bad[i], strlen(bad[i]), &j, &err);
        CHECK(rc < 0 && err != NULL, "bad JWE %zu refused: %s", i, err ? err->msg : "accepted");
        error_free(&err);
    }
}

int main(void)
{
    names();
    descriptors_and_index();
    manifests();
    configs();
    options();
    entries();
    users();
    jwes();
    return test_done();
}
