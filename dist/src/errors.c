/* Errors of the distributed inference layer (dlrm_dist.h). */
#include "dist_internal.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

dist_status_t dist_error(dist_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return status;
}

const char *dist_last_error(void)
{
    return last_error;
}

const char *dist_strerror(dist_status_t status)
{
    switch (status) {
    case DIST_OK: return "DIST_OK: success";
    case DIST_ERR_ARG: return "DIST_ERR_ARG: invalid argument";
    case DIST_ERR_NOMEM: return "DIST_ERR_NOMEM: out of memory";
    case DIST_ERR_INPUT: return "DIST_ERR_INPUT: bad input data";
    case DIST_ERR_ENGINE: return "DIST_ERR_ENGINE: the engine failed";
    case DIST_ERR_COMM: return "DIST_ERR_COMM: the exchange failed";
    }
    return "DIST_ERR_?: unknown status";
}
