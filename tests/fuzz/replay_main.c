/* A main() for the fuzz harnesses without libFuzzer: runs LLVMFuzzerTestOneInput once on every file
 * of the directories (or files) given, so that the committed corpora, reproducers of past
 * findings included, are checked by every build (gcc, no clang needed). A failed check aborts.
 *   fuzz_replay_<name> DIR_OR_FILE... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/ms_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    char *buf;
    size_t len;
    struct ms_err err;
    if (ms_read_file(path, &buf, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* an exact-size copy, so that reads past the input are caught as under libFuzzer */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return 1;
    memcpy(copy, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st)) {
            fprintf(stderr, "cannot open %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[i]);
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            bad += run_file(path);
            n++;
        }
        if (d) closedir(d);
    }
    printf("replayed %d inputs\n", n);
    return bad ? 1 : 0;
}
