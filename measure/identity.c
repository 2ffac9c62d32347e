/* A container's image identity, split by who wrote it (DESIGN.md, "Identity"): what root's
 * own records say goes to `image`, what the image or the container's creator says about
 * itself goes to `claimed`.  The split is pure; reading the records is apart from it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "measure.h"

/* containers/storage's records: one JSON array per file, rewritten whole (by rename) on
 * every change, so a reader never sees half of one. */
#define RECORDS_MAX (64 << 20)
#define CRIO_IMAGE_NAME "io.kubernetes.cri-o.ImageName"
#define CRIO_IMAGE_REF "io.kubernetes.cri-o.ImageRef"

static const char *str_member(const cJSON *obj, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static const cJSON *record_with_id(const cJSON *records, const char *id)
{
    const cJSON *r;
    cJSON_ArrayForEach (r, records) {
        const char *rid = str_member(r, "id");
        if (rid != NULL && strcmp(rid, id) == 0)
            return r;
    }
    return NULL;
}

static void add_or_null(cJSON *obj, const char *name, const char *value)
{
    cJSON_AddItemToObject(obj, name, json_string_or_null(value));
}

/* From containers/storage: the container's record names its image by id ("image") and
 * carries the engine's metadata, a JSON text whose "image-name" is the name the image was
 * asked for by (podman's and CRI-O's RuntimeContainerMetadata); the image's record has its
 * manifest digest. */
static bool from_storage(cJSON *img, const char *id, const struct measure_image_records *rec)
{
    const cJSON *c = record_with_id(rec->containers, id);
    if (c == NULL)
        return false;
    const char *image_id = str_member(c, "image");
    cleanup_json cJSON *meta = NULL;
    const char *metadata = str_member(c, "metadata");
    if (metadata != NULL)
        meta = cJSON_Parse(metadata);
    const cJSON *i = image_id ? record_with_id(rec->images, image_id) : NULL;
    add_or_null(img, "name", str_member(meta, "image-name"));
    add_or_null(img, "id", image_id);
    add_or_null(img, "digest", str_member(i, "digest"));
    cJSON_AddStringToObject(img, "from", "containers-storage");
    return true;
}

/* From CRI-O's own annotations.  ImageRef is the image id, or in some versions
 * "REPOSITORY@sha256:DIGEST". */
static bool from_crio(cJSON *img, const cJSON *ann)
{
    const char *name = str_member(ann, CRIO_IMAGE_NAME);
    const char *ref = str_member(ann, CRIO_IMAGE_REF);
    if (name == NULL && ref == NULL)
        return false;
    const char *at = ref ? strchr(ref, '@') : NULL;
    add_or_null(img, "name", name);
    add_or_null(img, "id", at ? NULL : ref);
    add_or_null(img, "digest", at ? at + 1 : NULL);
    cJSON_AddStringToObject(img, "from", "cri-o");
    return true;
}

void measure_image_identity(const cJSON *ann, const char *id,
                            const struct measure_image_records *rec, cJSON **image, cJSON **claimed)
{
    cJSON *img = cJSON_CreateObject();
    bool found = id != NULL && rec != NULL && from_storage(img, id, rec);
    if (!found && rec != NULL && rec->crio)
        found = from_crio(img, ann);
    if (!found) {
        static const char *const fields[] = {"name", "id", "digest", "from"};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            cJSON_AddNullToObject(img, fields[i]);
    }

    /* What the image says of itself (podman copies its annotations into the container's),
     * and what whoever created the container wrote: CRI-O's keys too, unless the node says
     * CRI-O runs its containers and so sets them. */
    bool crio = rec != NULL && rec->crio;
    static const char *const keys[][2] = {
        {"name", "org.opencontainers.image.ref.name"},
        {"name", CRIO_IMAGE_NAME},
        {"digest", "org.opencontainers.image.digest"},
        {"digest", CRIO_IMAGE_REF},
        {"version", "org.opencontainers.image.version"},
        {"revision", "org.opencontainers.image.revision"},
        {"source", "org.opencontainers.image.source"},
        {"created", "org.opencontainers.image.created"},
    };
    cJSON *cl = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (crio && strncmp(keys[i][1], "io.kubernetes.cri-o.", 20) == 0)
            continue;
        const char *v = str_member(ann, keys[i][1]);
        if (v != NULL && cJSON_GetObjectItemCaseSensitive(cl, keys[i][0]) == NULL)
            cJSON_AddStringToObject(cl, keys[i][0], v);
    }
    static const char *const fields[] = {"name",     "digest", "version",
                                         "revision", "source", "created"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (cJSON_GetObjectItemCaseSensitive(cl, fields[i]) == NULL)
            cJSON_AddNullToObject(cl, fields[i]);
    *image = img;
    *claimed = cl;
}

/* Refuses what someone other than root (or tether's own user) could change. */
static int check_owner(int fd, const char *path, bool dir, tether_error_t *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(err, errno, "`%s`", path);
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return error_set(err, 0, "`%s` is not a %s", path, dir ? "directory" : "regular file");
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022) != 0)
        return error_set(err, 0,
                         "`%s` is not trusted (owner %d, mode %04o): it must be root's and "
                         "writable by root alone",
                         path, (int)st.st_uid, st.st_mode & 07777);
    return 0;
}

/* <storage>/<sub>/<file>, with the storage directory, sub and file each checked.  A file
 * that is not there is no record (*out NULL), not an error. */
static int records_read(const char *storage, const char *sub, const char *file, cJSON **out,
                        tether_error_t *err)
{
    *out = NULL;
    cleanup_free char *subpath = xasprintf("%s/%s", storage, sub);
    cleanup_free char *path = xasprintf("%s/%s", subpath, file);
    cleanup_close int root = open(storage, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (root < 0)
        return errno == ENOENT ? 0 : error_set(err, errno, "`%s`", storage);
    if (check_owner(root, storage, true, err) < 0)
        return -1;
    cleanup_close int dir = openat(root, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dir < 0)
        return errno == ENOENT ? 0 : error_set(err, errno, "`%s`", subpath);
    if (check_owner(dir, subpath, true, err) < 0)
        return -1;
    cleanup_close int fd =
        openat(dir, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? 0 : error_set(err, errno, "`%s`", path);
    if (check_owner(fd, path, false, err) < 0)
        return -1;
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_json cJSON *j = NULL;
    if (read_fd(fd, RECORDS_MAX, &text, &len, err) < 0 || json_parse(text, len, &j, err) < 0)
        return error_wrap(err, "`%s`", path);
    if (!cJSON_IsArray(j))
        return error_set(err, 0, "`%s`: not a JSON array", path);
    *out = steal_pointer(&j);
    return 0;
}

int measure_image_records_read(const char *storage, cJSON **containers, cJSON **images,
                               tether_error_t *err)
{
    *containers = *images = NULL;
    if (records_read(storage, "overlay-containers", "containers.json", containers, err) < 0)
        return -1;
    if (*containers != NULL &&
        records_read(storage, "overlay-images", "images.json", images, err) < 0) {
        cJSON_Delete(*containers);
        *containers = NULL;
        return -1;
    }
    return 0;
}
