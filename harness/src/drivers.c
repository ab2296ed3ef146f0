/* Driver lists and interleaved rounds (harness.h). */
#define _GNU_SOURCE
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int harness_drivers_parse(const char *list, int default_lag, harness_driver_t *out, int max,
                          char *err, size_t errlen)
{
    char *copy = strdup(list ? list : ""), *save = NULL;
    int n = 0, bad = 0;
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *t = strtok_r(copy, ",", &save); t && !bad; t = strtok_r(NULL, ",", &save)) {
        harness_driver_t *d = &out[n];
        if (n == max) {
            snprintf(err, errlen, "at most %d drivers", max);
            bad = 1;
        } else if (bls_mode_parse(t, default_lag, &d->mode, &d->lag) != BLS_OK) {
            snprintf(err, errlen, "unknown driver '%s' (%s)", t, bls_last_error());
            bad = 1;
        } else {
            int bare = d->mode == BLS_MODE_SYNC || (d->mode == BLS_MODE_IALLTOALLV && d->lag == 0);
            if (bare)
                snprintf(d->name, sizeof(d->name), "%s", bls_mode_name(d->mode));
            else
                snprintf(d->name, sizeof(d->name), "%s:%d", bls_mode_name(d->mode), d->lag);
            n++;
        }
    }
    free(copy);
    if (!bad && n == 0) {
        snprintf(err, errlen, "the list of drivers is empty");
        bad = 1;
    }
    return bad ? -1 : n;
}

int harness_round_driver(int round, int i, int n)
{
    return (i + round) % n;
}
