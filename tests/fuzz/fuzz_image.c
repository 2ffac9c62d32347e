/* Fuzz target: the image layout's parsers.  The first byte picks one: index.json (with and
 * without a reference), a manifest, a config, the pubopts annotation, a layer member's name,
 * an image user against passwd and group text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../supervisor/image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tether_error_t err = NULL;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    /* The string parsers take NUL-terminated text. */
    char *s = malloc(len + 1);
    memcpy(s, text, len);
    s[len] = '\0';
    switch (data[0] % 7) {
    case 0:
    case 1: {
        struct image_descriptor d;
        if (image_parse_index(text, len, data[0] % 7 ? "app" : NULL, &d, &err) == 0)
            image_descriptor_clear(&d);
        break;
    }
    case 2: {
        struct image_manifest m;
        if (image_parse_manifest(text, len, &m, &err) == 0)
            image_manifest_clear(&m);
        break;
    }
    case 3: {
        struct image_config c;
        if (image_parse_config(text, len, &c, &err) == 0)
            image_config_clear(&c);
        break;
    }
    case 4: {
        unsigned char hmac[32];
        image_parse_pubopts(s, hmac, &err);
        break;
    }
    case 5: {
        char *target = NULL;
        image_entry_name(s, &target);
        free(target);
        break;
    }
    case 6: {
        /* the user, a newline, then text that stands for both passwd and group */
        const char *pw = NULL;
        char *sep1 = strchr(s, '\n');
        if (sep1 != NULL) {
            *sep1 = '\0';
            pw = sep1 + 1;
        }
        uint32_t uid, gid;
        image_resolve_user(s, pw, pw, &uid, &gid, &err);
        break;
    }
    }
    free(s);
    error_free(&err);
    return 0;
}
