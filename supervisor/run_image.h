/* The gate for `tether run --image oci:DIR[:REF]`: the layout verified and measured as
 * input.image, the node's policy asked, the key released and the layers decrypted into
 * memory on an allow, and the tree, command, environment and user made ready for the
 * launch. */
#pragma once

#include <cjson/cJSON.h>

#include "image/image.h"
#include "rootfs.h"

struct run;

struct run_image {
    struct image img;
    cJSON *input;                /* input.image as decided */
    char **env;                  /* the workload's environment: the image's Env */
    struct rootfs_layer *layers; /* the image's layers, for the child to apply */
    struct rootfs_spec rootfs;
};

/* 0 when the image may start (r->cmd, r->entrypoint, r->rootfs_dir, r->image ready), else
 * the exit status: 77 denied, 125 anything else. */
int run_gate_image(struct run *r);
/* Releases what one launch of the image held. */
void run_image_clear(struct run *r);
