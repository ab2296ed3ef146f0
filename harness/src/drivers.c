/* Driver lists and interleaved rounds (harness.h). */
#define _GNU_SOURCE
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "bls:auto" or "bls:auto:MAX" (or a bare "bls" when default_auto) into *d; 0 when t is not
 * one, -1 when it is one with a bad MAX. */
static int parse_auto(const char *t, int default_lag, int default_auto, harness_driver_t *d,
                      char *err, size_t errlen)
{
    long max;
    char *end = NULL;
    if (!strcmp(t, "bls") && default_auto) {
        max = default_lag;
    } else if (!strcmp(t, "bls:auto")) {
        max = HARNESS_AUTO_LAG_MAX;
    } else if (!strncmp(t, "bls:auto:", 9)) {
        max = strtol(t + 9, &end, 10);
        if (end == t + 9 || *end != '\0' || max < 0 || max > BLS_MAX_LAG) {
            snprintf(err, errlen,
                     "driver '%s': the lag bound after bls:auto: must be an integer "
                     "in [0, %d]",
                     t, BLS_MAX_LAG);
            return -1;
        }
    } else {
        return 0;
    }
    *d = (harness_driver_t){.mode = BLS_MODE_BLS, .lag = (int)max, .auto_lag = 1};
    snprintf(d->name, sizeof(d->name), "bls:auto:%ld", max);
    return 1;
}

int harness_drivers_parse(const char *list, int default_lag, int default_auto,
                          harness_driver_t *out, int max, char *err, size_t errlen)
{
    char *copy = strdup(list ? list : ""), *save = NULL;
    int n = 0, bad = 0;
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (char *t = strtok_r(copy, ",", &save); t && !bad; t = strtok_r(NULL, ",", &save)) {
        harness_driver_t *d = &out[n];
        int a = n == max ? 0 : parse_auto(t, default_lag, default_auto, d, err, errlen);
        if (n == max) {
            snprintf(err, errlen, "at most %d drivers", max);
            bad = 1;
        } else if (a != 0) {
            bad = a < 0;
            n += a > 0;
        } else if (bls_mode_parse(t, default_lag, &d->mode, &d->lag) != BLS_OK) {
            snprintf(err, errlen, "unknown driver '%s' (%s)", t, bls_last_error());
            bad = 1;
        } else {
            int bare = d->mode == BLS_MODE_SYNC || (d->mode == BLS_MODE_IALLTOALLV && d->lag == 0);
            d->auto_lag = 0;
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
