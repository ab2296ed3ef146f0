/* A fuzz target without libFuzzer: runs every file named (a directory: every file in it, in
 * name order) through LLVMFuzzerTestOneInput once.  This is how `make test` keeps the seed
 * and regression corpora passing under every build, sanitizers included. */
#define _DEFAULT_SOURCE
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    int ok = buf && fread(buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (ok)
        LLVMFuzzerTestOneInput(buf, (size_t)n);
    else
        fprintf(stderr, "replay: cannot read %s\n", path);
    free(buf);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    int n = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            struct dirent **list;
            int k = scandir(argv[i], &list, NULL, alphasort);
            for (int j = 0; j < k; j++) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", argv[i], list[j]->d_name);
                if (list[j]->d_name[0] != '.') {
                    bad |= replay_file(p) != 0;
                    n++;
                }
                free(list[j]);
            }
            free(list);
            bad |= k < 0;
        } else {
            bad |= replay_file(argv[i]) != 0;
            n++;
        }
    }
    printf("replay: %d inputs%s\n", n, bad ? ", some unreadable" : "");
    return bad || n == 0 ? 1 : 0;
}
