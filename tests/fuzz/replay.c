/* Runs a fuzz target over files and directories of inputs, without libFuzzer: every build
 * replays the seed corpora (and any crash files added to them) as a regression test. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../supervisor/core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    tether_error_t err = NULL;
    if (read_file(path, 16 << 20, &buf, &len, &err) < 0) {
        fprintf(stderr, "replay: %s\n", err->msg);
        error_free(&err);
        return -1;
    }
    /* An exact-size copy, so that AddressSanitizer sees a read past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i]) < 0)
                return 1;
            count++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, alphasort);
        if (n < 0) {
            perror(argv[i]);
            return 1;
        }
        for (int j = 0; j < n; j++) {
            if (names[j]->d_name[0] != '.') {
                char *path = xasprintf("%s/%s", argv[i], names[j]->d_name);
                if (replay_file(path) < 0)
                    return 1;
                free(path);
                count++;
            }
            free(names[j]);
        }
        free(names);
    }
    printf("replayed %zu inputs\n", count);
    return count > 0 ? 0 : 1;
}
