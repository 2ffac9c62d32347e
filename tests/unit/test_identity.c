/* The split of a container's image identity into what root's records say (image) and what
 * the image or its creator claims (claimed): measure/identity.c. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <string.h>

#include "../../measure/measure.h"
#include "test.h"

#define IMAGE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char containers_json[] =
    "[{\"id\": \"other\", \"image\": \"ffff\", \"metadata\": "
    "\"{\\\"image-name\\\":\\\"localhost/tether-ok:1\\\"}\"},"
    " {\"id\": \"c1\", \"names\": [\"web\"], \"image\": \"" IMAGE_ID "\", \"layer\": \"l1\","
    "  \"metadata\": "
    "\"{\\\"image-name\\\":\\\"localhost/claims:1\\\",\\\"image-id\\\":\\\"" IMAGE_ID
    "\\\",\\\"name\\\":\\\"web\\\",\\\"created-at\\\":1700000000}\"},"
    " {\"id\": \"c2\", \"image\": \"" IMAGE_ID "\", \"metadata\": \"{not json\"}]";
static const char images_json[] =
    "[{\"id\": \"" IMAGE_ID
    "\", \"digest\": \"sha256:abcd\", \"names\": [\"localhost/claims:1\"]}]";

static const char *str(const cJSON *obj, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static bool is_null(const cJSON *obj, const char *name)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static void split(const char *ann_text, const char *id, const struct measure_image_records *rec,
                  cJSON **image, cJSON **claimed)
{
    cJSON *ann = cJSON_Parse(ann_text);
    measure_image_identity(ann, id, rec, image, claimed);
    cJSON_Delete(ann);
}

int main(void)
{
    cJSON *containers = cJSON_Parse(containers_json);
    cJSON *images = cJSON_Parse(images_json);
    struct measure_image_records rec = {containers, images, false};
    cJSON *image, *claimed;

    /* The attack: the image names itself after an allowed one; storage knows better. */
    split("{\"org.opencontainers.image.ref.name\": \"localhost/tether-ok:1\","
          " \"org.opencontainers.image.version\": \"9\"}",
          "c1", &rec, &image, &claimed);
    CHECK_STR(str(image, "name"), "localhost/claims:1", "image.name is the storage record's");
    CHECK_STR(str(image, "id"), IMAGE_ID, "image.id is the record's image");
    CHECK_STR(str(image, "digest"), "sha256:abcd", "image.digest is the image record's");
    CHECK_STR(str(image, "from"), "containers-storage", "image.from");
    CHECK_STR(str(claimed, "name"), "localhost/tether-ok:1", "the claim is kept, as a claim");
    CHECK_STR(str(claimed, "version"), "9", "claimed.version");
    CHECK(is_null(claimed, "digest") && is_null(claimed, "created"), "unclaimed fields are null");
    cJSON_Delete(image);
    cJSON_Delete(claimed);

    /* No record of this container (runc used directly): nothing trusted at all. */
    split("{\"org.opencontainers.image.ref.name\": \"localhost/tether-ok:1\","
          " \"io.kubernetes.cri-o.ImageName\": \"localhost/tether-ok:1\"}",
          "runc-direct", &rec, &image, &claimed);
    CHECK(is_null(image, "name") && is_null(image, "id") && is_null(image, "digest") &&
              is_null(image, "from"),
          "no record: every image field is null");
    CHECK_STR(str(claimed, "name"), "localhost/tether-ok:1", "no record: the claim stays a claim");
    cJSON_Delete(image);
    cJSON_Delete(claimed);
    split("{}", NULL, NULL, &image, &claimed);
    CHECK(is_null(image, "name") && is_null(claimed, "name"), "no id, no records: all null");
    cJSON_Delete(image);
    cJSON_Delete(claimed);

    /* CRI-O's keys are claims unless the node says CRI-O is its runtime. */
    struct measure_image_records none = {NULL, NULL, false}, crio = {NULL, NULL, true};
    const char *crio_ann = "{\"io.kubernetes.cri-o.ImageName\": \"quay.io/app:2\","
                           " \"io.kubernetes.cri-o.ImageRef\": \"quay.io/app@sha256:ee\"}";
    split(crio_ann, "pod1", &none, &image, &claimed);
    CHECK(is_null(image, "name"), "CRI-O keys on a node that does not run CRI-O: not trusted");
    CHECK_STR(str(claimed, "name"), "quay.io/app:2", "... but claimed");
    CHECK_STR(str(claimed, "digest"), "quay.io/app@sha256:ee", "... ImageRef claimed as is");
    cJSON_Delete(image);
    cJSON_Delete(claimed);
    split(crio_ann, "pod1", &crio, &image, &claimed);
    CHECK_STR(str(image, "name"), "quay.io/app:2", "CRI-O node: ImageName is image.name");
    CHECK_STR(str(image, "digest"), "sha256:ee", "CRI-O node: REPO@DIGEST gives the digest");
    CHECK(is_null(image, "id"), "CRI-O node: no id from a REPO@DIGEST reference");
    CHECK_STR(str(image, "from"), "cri-o", "image.from");
    CHECK(is_null(claimed, "name") && is_null(claimed, "digest"),
          "CRI-O node: its own keys are not claims");
    cJSON_Delete(image);
    cJSON_Delete(claimed);
    split("{\"io.kubernetes.cri-o.ImageRef\": \"" IMAGE_ID "\"}", "pod1", &crio, &image, &claimed);
    CHECK_STR(str(image, "id"), IMAGE_ID, "CRI-O node: an ImageRef without @ is the image id");
    cJSON_Delete(image);
    cJSON_Delete(claimed);

    /* On a CRI-O node with a storage record, the record wins. */
    struct measure_image_records both = {containers, images, true};
    split(crio_ann, "c1", &both, &image, &claimed);
    CHECK_STR(str(image, "name"), "localhost/claims:1", "storage record over CRI-O's keys");
    cJSON_Delete(image);
    cJSON_Delete(claimed);

    /* A record whose metadata does not parse: the id is known, the name is not. */
    split("{}", "c2", &rec, &image, &claimed);
    CHECK(is_null(image, "name"), "bad metadata: no name");
    CHECK_STR(str(image, "id"), IMAGE_ID, "bad metadata: the id still");
    cJSON_Delete(image);
    cJSON_Delete(claimed);

    /* Records of the wrong shape give nothing, and do not crash. */
    cJSON *odd = cJSON_Parse("[1, \"x\", {\"id\": 5}, {\"id\": \"c3\", \"image\": 7}]");
    struct measure_image_records oddrec = {odd, odd, false};
    split("{}", "c3", &oddrec, &image, &claimed);
    CHECK(is_null(image, "name") && is_null(image, "id") && is_null(image, "digest"),
          "odd records: found, but nothing usable");
    cJSON_Delete(image);
    cJSON_Delete(claimed);
    cJSON_Delete(odd);

    cJSON_Delete(containers);
    cJSON_Delete(images);
    return test_done();
}
