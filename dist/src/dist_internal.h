/* Inside the distributed inference layer: errors, and the parts the files share. */
#ifndef DIST_INTERNAL_H
#define DIST_INTERNAL_H

#include "dlrm_dist.h"

/* Records a message for dist_last_error() in this thread and returns status. */
dist_status_t dist_error(dist_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The communicator of a session. */
MPI_Comm dist_session_comm(const dist_session_t *s);

#endif
