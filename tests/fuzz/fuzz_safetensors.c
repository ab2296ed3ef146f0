/* The safetensors loader against arbitrary bytes, for a small model (bottom MLP 4-8, top
 * 11-1, two tables of 64 x 8, as tests/dlrm/write_weights.py writes it), every table and only
 * the second.  Invariant beyond "no crash": a model that loads gives back, table by table,
 * the very bytes its header points at. */
#include "dlrm.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dlrm_config_t c;
    static int have;
    if (!have) {
        if (dlrm_config_parse("4-8", "1", "64-64", 8, "dot", 0, &c) != DLRM_OK)
            abort();
        have = 1;
    }
    const char *path = fuzz_scratch(data, size);
    if (!path)
        return 0;
    dlrm_model_t *m;
    if (dlrm_model_load(&c, path, NULL, 0, &m) == DLRM_OK) {
        /* Loaded: the file's header was a JSON object with the tensors; table 1's bytes are
         * somewhere in the data, 2048 of them. */
        const float *t1 = dlrm_model_table(m, 1);
        FUZZ_ASSERT(t1 != NULL && dlrm_model_table(m, 0) != NULL);
        int found = 0;
        for (size_t at = 8; !found && at + 2048 <= size; at++)
            found = memcmp(data + at, t1, 2048) == 0;
        FUZZ_ASSERT(found);
        dlrm_model_free(m);
    }
    const int second[] = {1};
    if (dlrm_model_load(&c, path, second, 1, &m) == DLRM_OK) {
        FUZZ_ASSERT(dlrm_model_table(m, 0) == NULL && dlrm_model_table(m, 1) != NULL);
        dlrm_model_free(m);
    }
    return 0;
}
