/* The image layout's pure parsers (see image.h): names, descriptors, index, manifest, config,
 * ocicrypt's options, layer member names and users. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "../core/cleanup.h"
#include "../core/util.h"
#include "image.h"

int image_parse_name(const char *spec, char **dir, char **ref, tether_error_t *err)
{
    if (strncmp(spec, "oci:", 4) != 0)
        return error_set(err, 0, "--image `%s`: only the `oci:DIR[:REF]` transport is known", spec);
    const char *d = spec + 4, *colon = strchr(d, ':');
    size_t dlen = colon ? (size_t)(colon - d) : strlen(d);
    if (dlen == 0)
        return error_set(err, 0, "--image `%s`: no directory", spec);
    if (colon != NULL) {
        const char *r = colon + 1;
        if (*r == '\0')
            return error_set(err, 0, "--image `%s`: an empty reference", spec);
        for (const char *p = r; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                return error_set(err, 0,
                                 "--image `%s`: the reference has a byte outside "
                                 "printable ASCII",
                                 spec);
    }
    *dir = xstrndup(d, dlen);
    *ref = colon ? xstrdup(colon + 1) : NULL;
    return 0;
}

static bool annotations_valid(const cJSON *a)
{
    if (!cJSON_IsObject(a))
        return false;
    const cJSON *v;
    cJSON_ArrayForEach (v, a)
        if (!cJSON_IsString(v))
            return false;
    return true;
}

int image_parse_descriptor(const cJSON *j, const char *where, struct image_descriptor *d,
                           tether_error_t *err)
{
    memset(d, 0, sizeof *d);
    if (!cJSON_IsObject(j))
        return error_set(err, 0, "%s must be an object, not %s", where, json_type_name(j));
    const char *mt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "mediaType"));
    if (mt == NULL || *mt == '\0')
        return error_set(err, 0, "%s: `mediaType` must be a non-empty string", where);
    const char *dg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "digest"));
    if (dg == NULL)
        return error_set(err, 0, "%s: `digest` must be a string", where);
    if (strncmp(dg, "sha256:", 7) != 0)
        return error_set(err, 0,
                         "%s: `digest` must be sha256:<hex> (no other algorithm is "
                         "accepted)",
                         where);
    if (strlen(dg) != IMAGE_DIGEST_LEN || strspn(dg + 7, "0123456789abcdef") != 64)
        return error_set(err, 0, "%s: `digest` must be sha256: and 64 lowercase hex digits", where);
    int64_t size;
    if (!json_get_int(cJSON_GetObjectItemCaseSensitive(j, "size"), 0, INT64_C(1) << 53, &size))
        return error_set(err, 0, "%s: `size` must be an integer >= 0", where);
    const cJSON *ann = cJSON_GetObjectItemCaseSensitive(j, "annotations");
    if (ann != NULL && !cJSON_IsNull(ann) && !annotations_valid(ann))
        return error_set(err, 0, "%s: `annotations` must be an object of strings", where);
    d->media_type = xstrdup(mt);
    memcpy(d->digest, dg, IMAGE_DIGEST_LEN + 1);
    d->size = size;
    d->annotations = cJSON_IsObject(ann) ? ann : NULL;
    return 0;
}

void image_descriptor_clear(struct image_descriptor *d)
{
    free(d->media_type);
    memset(d, 0, sizeof *d);
}

static int schema_version(const cJSON *doc, const char *what, tether_error_t *err)
{
    int64_t v;
    if (!cJSON_IsObject(doc))
        return error_set(err, 0, "%s must be a JSON object, not %s", what, json_type_name(doc));
    if (!json_get_int(cJSON_GetObjectItemCaseSensitive(doc, "schemaVersion"), 2, 2, &v))
        return error_set(err, 0, "%s: `schemaVersion` must be 2", what);
    return 0;
}

int image_parse_index(const char *text, size_t len, const char *ref, struct image_descriptor *out,
                      tether_error_t *err)
{
    memset(out, 0, sizeof *out);
    cleanup_json cJSON *doc = NULL;
    if (json_parse(text, len, &doc, err) < 0)
        return error_wrap(err, "`index.json`");
    if (schema_version(doc, "`index.json`", err) < 0)
        return -1;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "manifests");
    if (!cJSON_IsArray(list))
        return error_set(err, 0, "`index.json`: `manifests` must be an array");
    const cJSON *found = NULL, *m;
    int i = 0, n = cJSON_GetArraySize(list);
    cJSON_ArrayForEach (m, list) {
        char where[64];
        snprintf(where, sizeof where, "`index.json`: `manifests[%d]`", i++);
        struct image_descriptor d;
        if (image_parse_descriptor(m, where, &d, err) < 0)
            return -1;
        const char *name =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d.annotations, IMAGE_ANN_REF));
        image_descriptor_clear(&d);
        if (ref != NULL && (name == NULL || strcmp(name, ref) != 0))
            continue;
        if (found != NULL)
            return ref ? error_set(err, 0, "`index.json`: more than one manifest is named `%s`",
                                   ref)
                       : error_set(err, 0,
                                   "`index.json` holds %d manifests: name one "
                                   "(oci:DIR:REF)",
                                   n);
        found = m;
    }
    if (found == NULL)
        return ref ? error_set(err, 0, "`index.json`: no manifest is named `%s`", ref)
                   : error_set(err, 0, "`index.json`: no manifest");
    if (image_parse_descriptor(found, "`index.json`: the manifest", out, err) < 0)
        return -1;
    if (strcmp(out->media_type, IMAGE_MANIFEST_TYPE) != 0) {
        error_set(err, 0, "`index.json`: the manifest has media type `%s`, not `%s`%s",
                  out->media_type, IMAGE_MANIFEST_TYPE,
                  strstr(out->media_type, "index") ? " (nested indexes are not followed)" : "");
        image_descriptor_clear(out);
        return -1;
    }
    out->annotations = NULL; /* doc goes now */
    return 0;
}

static const struct {
    const char *suffix;
    enum image_compression c;
} layer_types[] = {
    {"tar", IMAGE_TAR},
    {"tar+gzip", IMAGE_GZIP},
    {"tar+zstd", IMAGE_ZSTD},
};

int image_media_type(const char *media_type, enum image_compression *c, bool *encrypted)
{
    static const char oci[] = "application/vnd.oci.image.layer.v1.";
    static const char docker[] = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    size_t len = strlen(media_type);
    *encrypted = len > 10 && strcmp(media_type + len - 10, "+encrypted") == 0;
    if (*encrypted)
        len -= 10;
    if (len == sizeof docker - 1 && strncmp(media_type, docker, len) == 0) {
        *c = IMAGE_GZIP;
        return 0;
    }
    if (strncmp(media_type, oci, sizeof oci - 1) != 0)
        return -1;
    const char *rest = media_type + sizeof oci - 1;
    size_t rlen = len - (sizeof oci - 1);
    for (size_t i = 0; i < sizeof layer_types / sizeof *layer_types; i++)
        if (strlen(layer_types[i].suffix) == rlen &&
            strncmp(rest, layer_types[i].suffix, rlen) == 0) {
            *c = layer_types[i].c;
            return 0;
        }
    return -1;
}

int image_parse_manifest(const char *text, size_t len, struct image_manifest *m,
                         tether_error_t *err)
{
    memset(m, 0, sizeof *m);
    if (json_parse(text, len, &m->doc, err) < 0)
        return error_wrap(err, "the manifest");
    const cJSON *doc = m->doc;
    if (schema_version(doc, "the manifest", err) < 0)
        goto fail;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(doc, "mediaType");
    if (mt != NULL && !(cJSON_IsString(mt) && strcmp(mt->valuestring, IMAGE_MANIFEST_TYPE) == 0)) {
        error_set(err, 0, "the manifest: `mediaType` must be `%s`", IMAGE_MANIFEST_TYPE);
        goto fail;
    }
    if (image_parse_descriptor(cJSON_GetObjectItemCaseSensitive(doc, "config"),
                               "the manifest's `config`", &m->config, err) < 0)
        goto fail;
    if (strcmp(m->config.media_type, IMAGE_CONFIG_TYPE) != 0) {
        error_set(err, 0, "the manifest's `config` has media type `%s`, not `%s`",
                  m->config.media_type, IMAGE_CONFIG_TYPE);
        goto fail;
    }
    if (m->config.size > IMAGE_JSON_MAX) {
        error_set(err, 0, "the manifest's `config` is %lld bytes, more than %u",
                  (long long)m->config.size, IMAGE_JSON_MAX);
        goto fail;
    }
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(doc, "layers");
    int n = cJSON_GetArraySize(layers);
    if (!cJSON_IsArray(layers) || n < 1 || n > IMAGE_LAYERS_MAX) {
        error_set(err, 0, "the manifest: `layers` must be an array of 1 to %d descriptors",
                  IMAGE_LAYERS_MAX);
        goto fail;
    }
    m->layers = xcalloc((size_t)n, sizeof *m->layers);
    const cJSON *l;
    cJSON_ArrayForEach (l, layers) {
        struct image_layer *ly = &m->layers[m->n_layers];
        ly->fd = -1;
        char where[64];
        snprintf(where, sizeof where, "the manifest's `layers[%zu]`", m->n_layers);
        if (image_parse_descriptor(l, where, &ly->desc, err) < 0)
            goto fail;
        m->n_layers++;
        if (image_media_type(ly->desc.media_type, &ly->compression, &ly->encrypted) < 0) {
            error_set(err, 0, "%s: media type `%s` is not a layer tether can apply", where,
                      ly->desc.media_type);
            goto fail;
        }
        const cJSON *la = ly->desc.annotations;
        if (ly->encrypted &&
            (cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(la, IMAGE_ANN_PUBOPTS)) ==
                 NULL ||
             (cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(la, IMAGE_ANN_JWE)) == NULL &&
              cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(la, KEYPROVIDER_ANNOTATION)) ==
                  NULL))) {
            error_set(err, 0, "%s: an encrypted layer needs `%s`, and `%s` or `%s`", where,
                      IMAGE_ANN_PUBOPTS, IMAGE_ANN_JWE, KEYPROVIDER_ANNOTATION);
            goto fail;
        }
    }
    const cJSON *ann = cJSON_GetObjectItemCaseSensitive(doc, "annotations");
    if (ann != NULL && !cJSON_IsNull(ann) && !annotations_valid(ann)) {
        error_set(err, 0, "the manifest: `annotations` must be an object of strings");
        goto fail;
    }
    m->annotations = cJSON_IsObject(ann) ? ann : NULL;
    return 0;
fail:
    image_manifest_clear(m);
    return -1;
}

void image_manifest_clear(struct image_manifest *m)
{
    for (size_t i = 0; i < m->n_layers; i++) {
        image_descriptor_clear(&m->layers[i].desc);
        if (m->layers[i].fd >= 0)
            close(m->layers[i].fd);
    }
    free(m->layers);
    image_descriptor_clear(&m->config);
    cJSON_Delete(m->doc);
    memset(m, 0, sizeof *m);
}

/* A list of strings, or null/absent (NULL); -1 for anything else. */
static int string_list(const cJSON *j, char ***out)
{
    *out = NULL;
    if (j == NULL || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > 4096)
        return -1;
    char **v = xcalloc((size_t)cJSON_GetArraySize(j) + 1, sizeof *v);
    size_t n = 0;
    const cJSON *s;
    cJSON_ArrayForEach (s, j) {
        if (!cJSON_IsString(s)) {
            while (n > 0)
                free(v[--n]);
            free(v);
            return -1;
        }
        v[n++] = xstrdup(s->valuestring);
    }
    *out = v;
    return 0;
}

static void string_list_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

static char *string_or_empty(const cJSON *j, bool *ok)
{
    *ok = j == NULL || cJSON_IsNull(j) || cJSON_IsString(j);
    return cJSON_IsString(j) && j->valuestring[0] ? xstrdup(j->valuestring) : NULL;
}

int image_parse_config(const char *text, size_t len, struct image_config *c, tether_error_t *err)
{
    memset(c, 0, sizeof *c);
    cleanup_json cJSON *doc = NULL;
    if (json_parse(text, len, &doc, err) < 0)
        return error_wrap(err, "the image config");
    if (!cJSON_IsObject(doc))
        return error_set(err, 0, "the image config must be an object, not %s", json_type_name(doc));
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(doc, "config");
    if (cfg == NULL || cJSON_IsNull(cfg))
        return 0;
    if (!cJSON_IsObject(cfg))
        return error_set(err, 0, "the image config: `config` must be an object");
    static const char *const lists[] = {"Entrypoint", "Cmd", "Env"};
    char ***dst[] = {&c->entrypoint, &c->cmd, &c->env};
    for (size_t i = 0; i < 3; i++)
        if (string_list(cJSON_GetObjectItemCaseSensitive(cfg, lists[i]), dst[i]) < 0) {
            image_config_clear(c);
            return error_set(err, 0, "the image config: `config.%s` must be a list of strings",
                             lists[i]);
        }
    for (size_t i = 0; c->env && c->env[i]; i++) {
        const char *eq = strchr(c->env[i], '=');
        if (eq == NULL || eq == c->env[i]) {
            image_config_clear(c);
            return error_set(err, 0, "the image config: `config.Env[%zu]` is not NAME=VALUE", i);
        }
    }
    bool ok_user, ok_wd;
    c->user = string_or_empty(cJSON_GetObjectItemCaseSensitive(cfg, "User"), &ok_user);
    c->working_dir = string_or_empty(cJSON_GetObjectItemCaseSensitive(cfg, "WorkingDir"), &ok_wd);
    if (!ok_user || !ok_wd) {
        image_config_clear(c);
        return error_set(err, 0, "the image config: `config.%s` must be a string",
                         ok_user ? "WorkingDir" : "User");
    }
    if (c->working_dir != NULL && c->working_dir[0] != '/') {
        image_config_clear(c);
        return error_set(err, 0,
                         "the image config: `config.WorkingDir` must be an absolute "
                         "path");
    }
    return 0;
}

void image_config_clear(struct image_config *c)
{
    string_list_free(c->entrypoint);
    string_list_free(c->cmd);
    string_list_free(c->env);
    free(c->user);
    free(c->working_dir);
    memset(c, 0, sizeof *c);
}

static int b64_value(unsigned char ch, bool url)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == (url ? '-' : '+'))
        return 62;
    if (ch == (url ? '_' : '/'))
        return 63;
    return -1;
}

long image_base64_decode(const char *s, size_t len, bool url, unsigned char *out)
{
    if (!url) {
        if (len % 4 != 0)
            return -1;
        size_t pad = 0;
        while (pad < 2 && len > pad && s[len - 1 - pad] == '=')
            pad++;
        len -= pad;
    }
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)s[i], url);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* Left-over bits must be zero: one text, one meaning. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    acc = 0;
    return (long)o;
}

/* A base64 member of an object decoded into a new heap buffer. */
static long b64_member(const cJSON *obj, const char *name, unsigned char **out)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
    if (s == NULL)
        return -1;
    size_t n = strlen(s);
    *out = xmalloc(n / 4 * 3 + 3);
    long r = image_base64_decode(s, n, false, *out);
    if (r < 0) {
        free(*out);
        *out = NULL;
    }
    return r;
}

int image_parse_pubopts(const char *b64, unsigned char hmac[32], tether_error_t *err)
{
    size_t n = strlen(b64);
    if (n > 65536)
        return error_set(err, 0, "`%s` is too long", IMAGE_ANN_PUBOPTS);
    cleanup_free unsigned char *text = xmalloc(n / 4 * 3 + 3);
    long len = image_base64_decode(b64, n, false, text);
    if (len < 0)
        return error_set(err, 0, "`%s` is not valid base64", IMAGE_ANN_PUBOPTS);
    cleanup_json cJSON *doc = NULL;
    if (json_parse((const char *)text, (size_t)len, &doc, err) < 0)
        return error_wrap(err, "`%s`", IMAGE_ANN_PUBOPTS);
    const char *cipher = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "cipher"));
    if (cipher == NULL || strcmp(cipher, "AES_256_CTR_HMAC_SHA256") != 0)
        return error_set(err, 0, "`%s`: cipher `%s` is not AES_256_CTR_HMAC_SHA256",
                         IMAGE_ANN_PUBOPTS, cipher ? cipher : "(none)");
    cleanup_free unsigned char *h = NULL;
    if (b64_member(doc, "hmac", &h) != 32)
        return error_set(err, 0, "`%s`: `hmac` must be base64 of 32 bytes", IMAGE_ANN_PUBOPTS);
    memcpy(hmac, h, 32);
    return 0;
}

int image_parse_privopts(const unsigned char *plain, size_t len, struct secret **symkey,
                         unsigned char nonce[16], char digest[IMAGE_DIGEST_LEN + 1],
                         tether_error_t *err)
{
    *symkey = NULL;
    cleanup_json cJSON *doc = NULL;
    if (json_parse((const char *)plain, len, &doc, err) < 0) {
        error_free(err);
        return error_set(err, 0, "the layer options in the JWE are not JSON");
    }
    cJSON *key = cJSON_GetObjectItemCaseSensitive(doc, "symkey");
    const cJSON *copts = cJSON_GetObjectItemCaseSensitive(doc, "cipheroptions");
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive(doc, "digest");
    int rc = -1;
    if (!cJSON_IsString(key)) {
        error_set(err, 0, "the layer options in the JWE have no `symkey`");
        goto out;
    }
    size_t n = strlen(key->valuestring);
    if (n != 44) {
        error_set(err, 0, "the layer options' `symkey` is not base64 of 32 bytes");
        goto out;
    }
    if (secret_new(n / 4 * 3 + 3, symkey, err) < 0)
        goto out;
    long klen = image_base64_decode(key->valuestring, n, false, (*symkey)->data);
    if (klen != 32) {
        error_set(err, 0, "the layer options' `symkey` is not base64 of 32 bytes");
        goto out;
    }
    (*symkey)->len = 32;
    unsigned char *nb = NULL;
    long nlen = b64_member(copts, "nonce", &nb);
    if (nlen == 16)
        memcpy(nonce, nb, 16);
    free(nb);
    if (nlen != 16) {
        error_set(err, 0, "the layer options' `cipheroptions.nonce` is not base64 of 16 bytes");
        goto out;
    }
    digest[0] = '\0';
    if (cJSON_IsString(dg) && dg->valuestring[0] != '\0') {
        const char *d = dg->valuestring;
        if (strlen(d) != IMAGE_DIGEST_LEN || strncmp(d, "sha256:", 7) != 0 ||
            strspn(d + 7, "0123456789abcdef") != 64) {
            error_set(err, 0, "the layer options' `digest` is not sha256:<hex>");
            goto out;
        }
        memcpy(digest, d, IMAGE_DIGEST_LEN + 1);
    } else if (dg != NULL && !cJSON_IsNull(dg) && !cJSON_IsString(dg)) {
        error_set(err, 0, "the layer options' `digest` must be a string");
        goto out;
    }
    rc = 0;
out:
    /* cJSON copied the key's base64 into the heap: wiped before it is freed. */
    if (cJSON_IsString(key))
        explicit_bzero(key->valuestring, strlen(key->valuestring));
    if (rc < 0) {
        secret_free(*symkey);
        *symkey = NULL;
    }
    return rc;
}

int image_entry_name(const char *name, char **target)
{
    *target = NULL;
    /* Component by component: "." and empty ones dropped, ".." refused. */
    size_t n = strlen(name);
    char *out = xmalloc(n + 1);
    size_t o = 0;
    const char *p = name, *last = NULL;
    size_t last_len = 0, last_at = 0;
    while (*p) {
        while (*p == '/')
            p++;
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            free(out);
            return -1;
        }
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (o > 0)
                out[o++] = '/';
            last_at = o;
            memcpy(out + o, p, len);
            o += len;
            last = p;
            last_len = len;
        }
        p = end;
    }
    out[o] = '\0';
    if (last == NULL || last_len < 4 || strncmp(last, ".wh.", 4) != 0) {
        *target = out;
        return IMAGE_ENTRY_FILE;
    }
    const char *what = last + 4;
    size_t wlen = last_len - 4;
    /* The parent directory, without its trailing slash. */
    size_t parent = last_at > 0 ? last_at - 1 : 0;
    if (wlen == 8 && strncmp(what, ".wh..opq", 8) == 0) {
        out[parent] = '\0';
        *target = out;
        return IMAGE_ENTRY_OPAQUE;
    }
    /* ".wh." alone, ".wh..", ".wh..." and other ".wh..wh." names are no whiteouts of
     * anything a layer may hold. */
    if (wlen == 0 || (wlen == 1 && what[0] == '.') || (wlen == 2 && strncmp(what, "..", 2) == 0) ||
        (wlen >= 4 && strncmp(what, ".wh.", 4) == 0)) {
        free(out);
        return -1;
    }
    memmove(out + last_at, what, wlen);
    out[last_at + wlen] = '\0';
    *target = out;
    return IMAGE_ENTRY_WHITEOUT;
}

/* A decimal id within uint32, or -1. */
static int parse_id(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 10)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX - 1) /* (uid_t)-1 means "unchanged" to setresuid */
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* The entry called name in passwd(5) or group(5) text: its third field (and, with gid, its
 * fourth).  0, or -1 when absent or malformed. */
static int db_lookup(const char *text, const char *name, size_t nlen, uint32_t *id, uint32_t *gid)
{
    for (const char *line = text; line != NULL && *line;) {
        const char *end = strchrnul(line, '\n');
        const char *f[4] = {line};
        size_t k = 1;
        for (const char *p = line; p < end && k < 4; p++)
            if (*p == ':')
                f[k++] = p + 1;
        if (k >= 3 && (size_t)(f[1] - 1 - f[0]) == nlen && strncmp(f[0], name, nlen) == 0) {
            const char *e2 = memchr(f[2], ':', (size_t)(end - f[2]));
            if (parse_id(f[2], (size_t)((e2 ? e2 : end) - f[2]), id) < 0)
                return -1;
            if (gid != NULL) {
                if (k < 4)
                    return -1;
                const char *e3 = memchr(f[3], ':', (size_t)(end - f[3]));
                if (parse_id(f[3], (size_t)((e3 ? e3 : end) - f[3]), gid) < 0)
                    return -1;
            }
            return 0;
        }
        line = *end ? end + 1 : NULL;
    }
    return -1;
}

int image_resolve_user(const char *user, const char *passwd, const char *group, uint32_t *uid,
                       uint32_t *gid, tether_error_t *err)
{
    const char *colon = strchr(user, ':');
    size_t ulen = colon ? (size_t)(colon - user) : strlen(user);
    uint32_t pw_gid = 0;
    bool have_pw_gid = false;
    if (parse_id(user, ulen, uid) < 0) {
        if (ulen == 0 || db_lookup(passwd, user, ulen, uid, &pw_gid) < 0)
            return error_set(err, 0, "the image's user `%.*s` is not in its /etc/passwd", (int)ulen,
                             user);
        have_pw_gid = true;
    }
    if (colon == NULL) {
        *gid = have_pw_gid ? pw_gid : 0;
        return 0;
    }
    const char *g = colon + 1;
    if (parse_id(g, strlen(g), gid) == 0)
        return 0;
    if (*g == '\0' || db_lookup(group, g, strlen(g), gid, NULL) < 0)
        return error_set(err, 0, "the image's group `%s` is not in its /etc/group", g);
    return 0;
}
