/* The gate for OCI images (see run_image.h). */
#define _GNU_SOURCE
#include "run_image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../measure/imgsig.h"
#include "../measure/measure.h"
#include "audit.h"
#include "core/cleanup.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "key.h"
#include "rootfs.h"
#include "run.h"
#include "status.h"
#include "tether.h"

#define PASSWD_MAX (1u << 20)

void run_image_clear(struct run *r)
{
    struct run_image *ri = r->image;
    if (ri == NULL)
        return;
    image_close(&ri->img);
    cJSON_Delete(ri->input);
    for (size_t i = 0; ri->env != NULL && ri->env[i] != NULL; i++)
        free(ri->env[i]);
    free(ri->env);
    free(ri->layers);
    free(ri);
    r->image = NULL;
}

static size_t count(char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

/* Entrypoint + Cmd, or Entrypoint + ARGS when ARGS were given, as Docker and podman do. */
static char **image_argv(const struct image_config *c, char *const *args)
{
    char *const *tail = args != NULL && args[0] != NULL ? args : c->cmd;
    size_t ne = count(c->entrypoint), nt = count(tail);
    char **v = xcalloc(ne + nt + 1, sizeof *v);
    for (size_t i = 0; i < ne; i++)
        v[i] = xstrdup(c->entrypoint[i]);
    for (size_t i = 0; i < nt; i++)
        v[ne + i] = xstrdup(tail[i]);
    return v;
}

static void argv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

/* The key the decision released, as the image's layers need it: where every encrypted layer
 * carries a tether keyprovider packet (for key tether_id), a 32-byte key (key.value, or
 * key.id naming <keystore>/<id>.key, which must be the packets' key); else a private key for
 * the JWE recipients (key.value: PEM, or base64 of PEM or DER; key.id: <keystore>/<id>.pem).
 * A key is used only when the decision names it: an allow alone releases nothing. */
static int release_key(struct run *r, const char *tether_id, struct secret **key,
                       struct image_key *k, const char **source, tether_error_t *err)
{
    *key = r->d.key_value;
    r->d.key_value = NULL;
    *source = "decision";
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->d.key, "id"));
    if (*key == NULL) {
        if (id == NULL)
            return error_set(err, 0,
                             "the image is encrypted and the decision released no key "
                             "(`key.id` or `key.value`)");
        if (tether_id != NULL && strcmp(id, tether_id) != 0)
            return error_set(err, 0,
                             "the decision released key `%s`; the image's layers are wrapped "
                             "for key `%s`",
                             id, tether_id);
        *source = "keystore";
        int rc = tether_id != NULL
                     ? keystore_read(r->cfg.keystore, id, ".key", KEY_BYTES, KEY_BYTES, key, err)
                     : image_key_read(r->cfg.keystore, id, key, err);
        if (rc < 0)
            return -1;
    }
    if (tether_id != NULL && (*key)->len == KEY_BYTES) {
        k->sym = *key;
        return 0;
    }
    return image_key_parse(*key, &k->pkey, err);
}

/* An encrypted image's key, released and on record before it is used, then each layer's
 * HMAC over all of it and its plaintext into a sealed memfd. */
static int unlock_layers(struct run *r, tether_error_t *err)
{
    struct image *img = &r->image->img;
    cleanup_free char *tether_id = NULL;
    if (image_tether_key_id(img, &tether_id, err) < 0)
        return -1;
    cleanup_secret struct secret *key = NULL;
    struct image_key k = {0};
    const char *source;
    cleanup_json cJSON *rel = NULL;
    int rc = -1;
    if (release_key(r, tether_id, &key, &k, &source, err) < 0)
        goto out;
    rel = audit_record_new("key_release");
    cJSON_AddStringToObject(rel, "argv0", r->cmd[0]);
    cJSON_AddStringToObject(rel, "image", r->image_name);
    cJSON_AddStringToObject(rel, "digest", img->manifest_digest);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->d.key, "id"));
    cJSON_AddItemToObject(rel, "key_id", json_string_or_null(id));
    cJSON_AddStringToObject(rel, "wrap", k.sym != NULL ? "tether" : "jwe");
    cJSON_AddStringToObject(rel, "source", source);
    cJSON_AddStringToObject(rel, "engine", r->policy->ops->engine);
    if (audit_append(r->audit_path, rel, err) < 0)
        goto out;
    rc = image_decrypt(img, &k, err);
out:
    image_key_free(k.pkey);
    return rc;
}

/* The user to run as, when the decision does not say: the image's User, by number or by
 * name in the image's own /etc/passwd and /etc/group. */
static int image_user(struct run *r, tether_error_t *err)
{
    struct confine *c = &r->d.confinement;
    const char *user = r->image->img.config.user;
    if (c->user_given || user == NULL)
        return 0;
    cleanup_free char *passwd = NULL, *group = NULL;
    bool names = strspn(user, "0123456789:") != strlen(user);
    if (names && (image_find_file(&r->image->img, "etc/passwd", PASSWD_MAX, &passwd, err) < 0 ||
                  image_find_file(&r->image->img, "etc/group", PASSWD_MAX, &group, err) < 0))
        return -1;
    uint32_t uid, gid;
    if (image_resolve_user(user, passwd, group, &uid, &gid, err) < 0)
        return -1;
    c->user_given = true;
    c->uid = uid;
    c->gid = gid;
    return 0;
}

/* The tree's mount point, its size, the layers and where to start, for the child. */
static int prepare_tree(struct run *r, tether_error_t *err)
{
    struct run_image *ri = r->image;
    const struct image *img = &ri->img;
    cleanup_free char *dir = status_dir();
    mkdir(dir, 0700);
    r->rootfs_dir = xasprintf("%s/root.%d", dir, (int)getpid());
    if (mkdir(r->rootfs_dir, 0700) < 0 && errno != EEXIST)
        return error_set(err, errno, "`%s`", r->rootfs_dir);
    /* Room for layers that unpack to several times their compressed size; the cap keeps a
     * decompression bomb from taking the host's memory. */
    uint64_t total = 0;
    ri->layers = xcalloc(img->m.n_layers, sizeof *ri->layers);
    for (size_t i = 0; i < img->m.n_layers; i++) {
        const struct image_layer *l = &img->m.layers[i];
        total += (uint64_t)l->desc.size;
        ri->layers[i].fd = l->fd;
        ri->layers[i].compression = l->compression == IMAGE_GZIP   ? ROOTFS_GZIP
                                    : l->compression == IMAGE_ZSTD ? ROOTFS_ZSTD
                                                                   : ROOTFS_TAR;
    }
    r->rootfs_cap = 8 * total + (64u << 20);
    r->entrypoint = xcalloc(PATH_MAX, 1);
    snprintf(r->entrypoint, PATH_MAX, "%s", r->cmd[0]);
    const char *path_env = NULL;
    size_t n = count(img->config.env);
    ri->env = xcalloc(n + 1, sizeof *ri->env);
    for (size_t i = 0; i < n; i++) {
        ri->env[i] = xstrdup(img->config.env[i]);
        if (strncmp(ri->env[i], "PATH=", 5) == 0)
            path_env = ri->env[i] + 5;
    }
    ri->rootfs = (struct rootfs_spec){.layers = ri->layers,
                                      .n_layers = img->m.n_layers,
                                      .workdir = img->config.working_dir,
                                      .path_env = path_env,
                                      .entrypoint = r->entrypoint,
                                      .entrypoint_size = PATH_MAX};
    return 0;
}

int run_gate_image(struct run *r)
{
    cleanup_error tether_error_t err = NULL;
    if (geteuid() != 0) {
        log_error("--image needs root: the image's tree is a tmpfs in a private mount "
                  "namespace");
        return EXIT_FAILED;
    }
    struct run_image *ri = r->image = xcalloc(1, sizeof *r->image);
    if (rootfs_load(&err) < 0 || crypto_load(&err) < 0 ||
        image_open(r->image_name, &ri->img, &err) < 0) {
        log_error("%s", err->msg);
        return EXIT_FAILED;
    }
    const struct image *img = &ri->img;
    char **argv = image_argv(&img->config, r->image_args);
    if (argv[0] == NULL) {
        argv_free(argv);
        log_error("--image `%s`: the image has no Entrypoint or Cmd, and no ARGS were given",
                  r->image_name);
        return EXIT_FAILED;
    }
    argv_free(r->image_argv);
    r->image_argv = argv;
    r->cmd = argv;
    r->path = xstrdup(img->index_path); /* watched: a changed index is drift */
    snprintf(r->exe_sha, sizeof r->exe_sha, "%s", img->index_sha);

    /* 1. Measure: the workload is what the image runs, with the image's environment. */
    r->workload = measure_workload_collect(r->cmd, NULL, r->labels);
    bool truncated;
    size_t n_env = count(img->config.env);
    cJSON_ReplaceItemInObjectCaseSensitive(
        r->workload, "env_names",
        measure_env_names((const char *const *)img->config.env, n_env, &truncated));
    ri->input = image_input(img);
    /* Its signatures, verified against the node's trusted_image_signers (measure/imgsig.h). */
    cleanup_close int ldir = open(img->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cJSON *sigs = NULL;
    if (ldir < 0 || image_signatures_verify(ldir, img->manifest_digest, img->ref,
                                            r->cfg.trusted_image_signers, &sigs, &err) < 0) {
        log_error("--image `%s`: signatures: %s", r->image_name, err ? err->msg : strerror(errno));
        return EXIT_FAILED;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(ri->input, "signatures", sigs);
    if (r->cfg.require_signed_images && !image_signatures_any_valid(sigs)) {
        log_error("--image `%s`: no signature by a trusted_image_signers key matches its "
                  "manifest, and require_signed_images is set",
                  r->image_name);
        run_audit_launch_failed(r, "unsigned image, require_signed_images");
        return EXIT_FAILED;
    }
    cleanup_json cJSON *input = measure_input_build("launch", measure_host_collect(r->cfg.labels),
                                                    cJSON_Duplicate(r->workload, true), NULL, NULL);
    cJSON_AddItemToObject(input, "image", cJSON_Duplicate(ri->input, true));

    /* 2. Decide, and record it.  No fail-open here: a key comes only from a decision. */
    policy_decide(r->policy, input, &r->d);
    if (!run_audit_decision(r, r->policy, &r->d, input))
        return EXIT_FAILED;
    if (!r->d.allow) {
        cleanup_free char *why = decision_reasons_joined(&r->d);
        log_error("denied: %s", why);
        return EXIT_DENIED;
    }

    /* The image's own policy, if it carries one: the same input, and it must allow too. */
    const char *own = image_policy(img);
    if (own != NULL) {
        char hex[SHA256_HEX_LEN + 1];
        size_t len = strlen(own);
        if (len > IMAGE_POLICY_MAX) {
            log_error("--image `%s`: `%s` is larger than %u bytes", r->image_name, IMAGE_ANN_POLICY,
                      IMAGE_POLICY_MAX);
            return EXIT_FAILED;
        }
        sha256_hex(own, len, hex);
        int erc = run_decide_embedded(r, r->image_name, own, len, hex, input);
        if (erc != 0)
            return erc;
    }

    /* 3. The key, for an encrypted image only, and on record before it is used. */
    if (img->encrypted && unlock_layers(r, &err) < 0) {
        log_error("--image `%s`: %s", r->image_name, err->msg);
        run_audit_launch_failed(r, err->msg);
        return EXIT_FAILED;
    }
    r->sealed = img->encrypted; /* the plaintext's guard (default_capabilities) */
    secret_free(r->d.key_value);
    r->d.key_value = NULL;

    if (image_user(r, &err) < 0 || prepare_tree(r, &err) < 0) {
        log_error("--image `%s`: %s", r->image_name, err->msg);
        run_audit_launch_failed(r, err->msg);
        return EXIT_FAILED;
    }
    return 0;
}
