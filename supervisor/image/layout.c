/* The OCI image layout on disk (see image.h): opened below a trusted directory, every blob
 * checked against its descriptor before it is parsed or kept, and input.image. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../measure/measure.h"
#include "../core/cleanup.h"
#include "../core/trust.h"
#include "../core/util.h"
#include "image.h"

/* blobs/sha256/<hex> for a descriptor: opened without following links, root's (or tether's
 * user's) and writable by nobody else, so that the bytes checked now are the bytes read
 * later; its size and digest checked. */
static int blob_open(int sha_dir, const char *dir, const struct image_descriptor *d,
                     const char *what, tether_error_t *err)
{
    const char *hex = d->digest + 7;
    cleanup_free char *path = xasprintf("%s/blobs/sha256/%s", dir, hex);
    cleanup_close int fd = trust_openat(sha_dir, path, hex, 0, err);
    if (fd < 0)
        return error_wrap(err, "%s", what);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(err, errno, "%s: `%s`", what, path);
    if (st.st_size != d->size)
        return error_set(err, 0, "%s: `%s` is %lld bytes, its descriptor says %lld; refusing", what,
                         path, (long long)st.st_size, (long long)d->size);
    char got[SHA256_HEX_LEN + 1];
    if (sha256_fd(fd, got, err) < 0)
        return error_wrap(err, "%s: `%s`", what, path);
    if (strcmp(got, hex) != 0)
        return error_set(err, 0, "%s: `%s` does not match its digest (sha256:%s); refusing", what,
                         path, got);
    return steal_fd(&fd);
}

/* A JSON blob: read once into memory, and that copy hashed, so that what is parsed is what
 * was checked. */
static int blob_read(int sha_dir, const char *dir, const struct image_descriptor *d,
                     const char *what, char **text, size_t *len, tether_error_t *err)
{
    if (d->size > IMAGE_JSON_MAX)
        return error_set(err, 0, "%s is %lld bytes, more than %u", what, (long long)d->size,
                         IMAGE_JSON_MAX);
    const char *hex = d->digest + 7;
    cleanup_free char *path = xasprintf("%s/blobs/sha256/%s", dir, hex);
    cleanup_close int fd = trust_openat(sha_dir, path, hex, 0, err);
    if (fd < 0)
        return error_wrap(err, "%s", what);
    if (read_fd(fd, IMAGE_JSON_MAX, text, len, err) < 0)
        return error_wrap(err, "%s: `%s`", what, path);
    char got[SHA256_HEX_LEN + 1];
    sha256_hex(*text, *len, got);
    if ((int64_t)*len != d->size || strcmp(got, hex) != 0) {
        free(*text);
        *text = NULL;
        return error_set(err, 0,
                         "%s: `%s` does not match its descriptor (%zu bytes, sha256:%s); "
                         "refusing",
                         what, path, *len, got);
    }
    return 0;
}

static int open_layout(struct image *img, tether_error_t *err)
{
    const char *dir = img->dir;
    cleanup_close int dfd = trust_open(dir, TRUST_DIR, err);
    if (dfd < 0)
        return -1;
    cleanup_free char *layout_path = xasprintf("%s/oci-layout", dir);
    cleanup_close int lfd = trust_openat(dfd, layout_path, "oci-layout", 0, err);
    cleanup_free char *layout_text = NULL;
    size_t len;
    if (lfd < 0 || read_fd(lfd, 4096, &layout_text, &len, err) < 0)
        return -1;
    cleanup_json cJSON *layout = NULL;
    if (json_parse(layout_text, len, &layout, err) < 0)
        return error_wrap(err, "`%s`", layout_path);
    const char *version =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(layout, "imageLayoutVersion"));
    if (version == NULL || strcmp(version, "1.0.0") != 0)
        return error_set(err, 0, "`%s`: `imageLayoutVersion` must be \"1.0.0\"", layout_path);

    img->index_path = xasprintf("%s/index.json", dir);
    cleanup_close int ifd = trust_openat(dfd, img->index_path, "index.json", 0, err);
    cleanup_free char *index = NULL;
    if (ifd < 0 || read_fd(ifd, IMAGE_JSON_MAX, &index, &len, err) < 0)
        return -1;
    sha256_hex(index, len, img->index_sha);
    struct image_descriptor md;
    if (image_parse_index(index, len, img->ref, &md, err) < 0)
        return -1;
    memcpy(img->manifest_digest, md.digest, sizeof md.digest);
    img->manifest_media_type = steal_pointer(&md.media_type);

    cleanup_free char *blobs_path = xasprintf("%s/blobs", dir);
    cleanup_close int bfd = trust_openat(dfd, blobs_path, "blobs", TRUST_DIR, err);
    cleanup_free char *sha_path = xasprintf("%s/blobs/sha256", dir);
    cleanup_close int sfd = bfd < 0 ? -1 : trust_openat(bfd, sha_path, "sha256", TRUST_DIR, err);
    if (sfd < 0)
        return -1;
    cleanup_free char *manifest = NULL, *config = NULL;
    if (blob_read(sfd, dir, &md, "the manifest", &manifest, &len, err) < 0 ||
        image_parse_manifest(manifest, len, &img->m, err) < 0)
        return -1;
    if (blob_read(sfd, dir, &img->m.config, "the image config", &config, &len, err) < 0 ||
        image_parse_config(config, len, &img->config, err) < 0)
        return -1;
    for (size_t i = 0; i < img->m.n_layers; i++) {
        struct image_layer *l = &img->m.layers[i];
        char what[32];
        snprintf(what, sizeof what, "layer %zu", i);
        l->fd = blob_open(sfd, dir, &l->desc, what, err);
        if (l->fd < 0)
            return -1;
        img->encrypted |= l->encrypted;
    }
    return 0;
}

int image_open(const char *spec, struct image *img, tether_error_t *err)
{
    memset(img, 0, sizeof *img);
    if (image_parse_name(spec, &img->dir, &img->ref, err) < 0)
        return -1;
    if (open_layout(img, err) < 0) {
        error_wrap(err, "--image `%s`", spec);
        image_close(img);
        return -1;
    }
    return 0;
}

void image_close(struct image *img)
{
    free(img->dir);
    free(img->ref);
    free(img->index_path);
    free(img->manifest_media_type);
    image_manifest_clear(&img->m);
    image_config_clear(&img->config);
    memset(img, 0, sizeof *img);
}

void image_close_layers(struct image *img)
{
    for (size_t i = 0; i < img->m.n_layers; i++)
        if (img->m.layers[i].fd >= 0)
            close(steal_fd(&img->m.layers[i].fd));
}

static cJSON *string_array(char *const *v)
{
    if (v == NULL)
        return cJSON_CreateNull();
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; v[i] != NULL; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

const char *image_policy(const struct image *img)
{
    return cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(img->m.annotations, IMAGE_ANN_POLICY));
}

/* The key id a layer's tether packet names, or null (also for one that does not parse: the
 * decryption refuses that one by name). */
static cJSON *layer_tether_key_id(const struct image_layer *l)
{
    const char *packet = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(l->desc.annotations, KEYPROVIDER_ANNOTATION));
    cleanup_free char *id = NULL;
    cleanup_error tether_error_t err = NULL;
    if (packet == NULL || keyprovider_annotation_key_id(packet, &id, &err) < 0)
        return cJSON_CreateNull();
    return cJSON_CreateString(id);
}

cJSON *image_input(const struct image *img)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "ref", json_string_or_null(img->ref));
    cJSON_AddStringToObject(j, "manifest_digest", img->manifest_digest);
    cJSON_AddStringToObject(j, "config_digest", img->m.config.digest);
    cJSON *layers = cJSON_AddArrayToObject(j, "layers");
    for (size_t i = 0; i < img->m.n_layers; i++) {
        const struct image_layer *l = &img->m.layers[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "digest", l->desc.digest);
        cJSON_AddStringToObject(e, "media_type", l->desc.media_type);
        cJSON_AddNumberToObject(e, "size", (double)l->desc.size);
        cJSON_AddBoolToObject(e, "encrypted", l->encrypted);
        cJSON_AddBoolToObject(
            e, "jwe", cJSON_GetObjectItemCaseSensitive(l->desc.annotations, IMAGE_ANN_JWE) != NULL);
        cJSON_AddItemToObject(e, "tether_key_id", layer_tether_key_id(l));
        cJSON_AddItemToArray(layers, e);
    }
    cJSON *ann =
        img->m.annotations ? cJSON_Duplicate(img->m.annotations, true) : cJSON_CreateObject();
    json_sort_keys(ann);
    cJSON_AddItemToObject(j, "annotations", ann);
    const struct image_config *c = &img->config;
    cJSON *cfg = cJSON_AddObjectToObject(j, "config");
    cJSON_AddItemToObject(cfg, "entrypoint", string_array(c->entrypoint));
    cJSON_AddItemToObject(cfg, "cmd", string_array(c->cmd));
    size_t n = 0;
    while (c->env != NULL && c->env[n] != NULL)
        n++;
    bool truncated;
    cJSON_AddItemToObject(cfg, "env_names",
                          measure_env_names((const char *const *)c->env, n, &truncated));
    cJSON_AddItemToObject(cfg, "user", json_string_or_null(c->user));
    cJSON_AddItemToObject(cfg, "working_dir", json_string_or_null(c->working_dir));
    cJSON_AddBoolToObject(j, "encrypted", img->encrypted);
    const char *policy = image_policy(img);
    char hex[SHA256_HEX_LEN + 1];
    if (policy != NULL)
        sha256_hex(policy, strlen(policy), hex);
    cJSON_AddItemToObject(j, "policy_sha256", json_string_or_null(policy ? hex : NULL));
    cJSON_AddItemToObject(j, "signatures", image_signatures_collect(img));
    return j;
}
