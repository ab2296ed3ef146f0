/* bls-dlrm's option parser against arbitrary argument vectors: the input split at NUL bytes
 * into up to 64 arguments.  Invariants beyond "no crash, no leak, no undefined behaviour": a
 * rejected command line says why; an accepted one has a positive batch, at least one driver,
 * a finite non-negative timeout, and a model configuration that parses or is rejected with a
 * message (the tool's next step). */
#include "dlrm_options.h"
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_ARGS = 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[MAX_ARGS + 2] = {"bls-dlrm"};
    int argc = 1;
    for (size_t i = 0; i < size && argc <= MAX_ARGS; i++)
        if (i == 0 || copy[i - 1] == '\0')
            argv[argc++] = copy + i;
    argv[argc] = NULL;
    dlrm_opts_t o;
    char err[600] = "";
    opts_result_t r = dlrm_options_parse(argc, argv, 4, &o, err, sizeof(err));
    if (r == OPTS_BAD)
        FUZZ_ASSERT(err[0] != '\0');
    if (r == OPTS_RUN) {
        FUZZ_ASSERT(o.batch >= 4 && o.ndrivers >= 1);
        FUZZ_ASSERT(isfinite(o.timeout) && o.timeout >= 0);
        dlrm_config_t c;
        if (dlrm_config_parse(o.bot, o.top, o.emb, o.d, o.op, o.itself, &c) == DLRM_OK) {
            err[0] = '\0';
            if (dlrm_options_apply(&o, &c, err, sizeof(err)) != 0)
                FUZZ_ASSERT(err[0] != '\0');
            dlrm_config_free(&c);
        } else {
            FUZZ_ASSERT(dlrm_last_error()[0] != '\0');
        }
    }
    dlrm_options_free(&o);
    free(copy);
    return 0;
}
