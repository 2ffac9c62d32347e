/* Fuzz target: the sealed-workload header parser, and opening a whole file (the header read
 * by its own lengths, the length check, and each version's digest). */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../supervisor/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seal_header h;
    tether_error_t err = NULL;
    if (seal_parse_header(data, size, &h, &err) == 0) {
        (void)seal_chunks(&h);
        (void)seal_payload_len(&h);
    }
    seal_header_clear(&h);
    error_free(&err);

    int fd = memfd_create("fuzz-sealed", MFD_CLOEXEC);
    if (fd >= 0 && write(fd, data, size) == (ssize_t)size) {
        struct sealed s;
        if (seal_open(fd, NULL, false, &s, &err) == 0)
            seal_close(&s);
        error_free(&err);
    }
    if (fd >= 0)
        close(fd);
    return 0;
}
