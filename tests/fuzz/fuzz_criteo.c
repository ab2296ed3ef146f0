/* The Criteo reader against arbitrary bytes, lenient and strict.  Invariants beyond "no crash":
 * lenient, every line is a sample or a skip (samples + skipped = lines); every index lies in
 * its table; every dense feature is log(x + 1) of a non-negative x, so finite and >= 0;
 * strict reads the same samples up to its first bad line. */
#include "dlrm.h"
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS = 10, BATCH = 7 };

static int read_all(const char *path, const dlrm_config_t *c, int strict, float *first_labels,
                    int64_t *n_out)
{
    dlrm_criteo_t *r;
    if (dlrm_criteo_open(path, c, strict, &r) != DLRM_OK)
        return -1;
    float labels[BATCH], dense[BATCH * 13];
    int64_t store[26][BATCH], *idx[26];
    for (int t = 0; t < 26; t++)
        idx[t] = store[t];
    dlrm_samples_t s = {labels, dense, idx};
    int64_t total = 0;
    int n, st;
    while ((st = dlrm_criteo_read(r, BATCH, &s, &n)) == DLRM_OK && n > 0) {
        for (int i = 0; i < n; i++) {
            FUZZ_ASSERT(labels[i] == 0.0f || labels[i] == 1.0f);
            for (int j = 0; j < 13; j++)
                FUZZ_ASSERT(isfinite(dense[i * 13 + j]) && dense[i * 13 + j] >= 0.0f);
            for (int t = 0; t < 26; t++)
                FUZZ_ASSERT(idx[t][i] >= 0 && idx[t][i] < ROWS);
            if (total + i < 64)
                first_labels[total + i] = labels[i];
        }
        total += n;
        if (n < BATCH)
            break;
    }
    if (!strict) {
        FUZZ_ASSERT(st == DLRM_OK);
        FUZZ_ASSERT(total + dlrm_criteo_skipped(r) == dlrm_criteo_lines(r));
    }
    dlrm_criteo_close(r);
    *n_out = total;
    return st == DLRM_OK ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dlrm_config_t c;
    static int have;
    if (!have) {
        char emb[26 * 3 + 1] = "";
        for (int t = 0; t < 26; t++)
            strcat(emb, t ? "-10" : "10");
        if (dlrm_config_parse("13-4", "8-1", emb, 4, "dot", 0, &c) != DLRM_OK)
            abort();
        have = 1;
    }
    const char *path = fuzz_scratch(data, size);
    if (!path)
        return 0;
    float lenient[64], strict[64];
    int64_t n_lenient = 0, n_strict = 0;
    if (read_all(path, &c, 0, lenient, &n_lenient) < 0)
        return 0;
    int strict_failed = read_all(path, &c, 1, strict, &n_strict);
    /* Strict stops at the first bad line, lenient skips it: the same samples before it. */
    FUZZ_ASSERT(n_strict <= n_lenient);
    FUZZ_ASSERT(strict_failed || n_strict == n_lenient);
    for (int64_t i = 0; i < n_strict && i < 64; i++)
        FUZZ_ASSERT(strict[i] == lenient[i]);
    return 0;
}
