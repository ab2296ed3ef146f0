/* A stall watchdog for MPI tools: ends the job, with a message naming the process and what it
 * was doing, when the process makes no progress for a set time.  MPI's blocking calls
 * (MPI_Alltoallv in the sync driver, MPI_Init, the start-up and final collectives) cannot time
 * out, and a stalled or unreachable peer would otherwise hang them forever.
 *
 * Tools only: on expiry it calls MPI_Abort (or _exit before MPI is up), which no library may. */
#ifndef BLS_TOOLS_WATCHDOG_H
#define BLS_TOOLS_WATCHDOG_H

/* Starts the thread: `tool` names the program in the message, limit_s > 0 the time without
 * progress that ends the job.  0, or -1 when the thread cannot be created (the tool runs on,
 * unwatched). */
int watchdog_start(const char *tool, double limit_s);
/* The rank to name (before MPI is up: none), and a new limit. */
void watchdog_set(int rank, double limit_s);
/* Progress: the clock starts again; `where` (a string that outlives the run) says what the
 * process does from now on: waiting on its peers or moving work with them. */
void watchdog_kick(const char *where);
/* Local work of unbounded length (loading a model): no limit until the next kick. */
void watchdog_hold(const char *where);
/* Call right before MPI_Finalize, every output written: if MPI_Finalize has not returned
 * within grace_s, the process says so and exits with `status` (no MPI_Abort: the results
 * stand).  MPICH 4.0.2 over UCX's TCP transport, the transport between hosts, can hang there
 * for good (tests/repro/mpich_ucx_tcp_finalize.c).  Starts the thread if it is not running. */
void watchdog_finalize(const char *tool, int status, double grace_s);
#define WATCHDOG_FINALIZE_GRACE 10.0 /* seconds; MPI_Finalize takes well under one */
/* Stops and joins the thread. */
void watchdog_stop(void);

/* Ends the job with `status` (MPI_Abort once MPI is up, else _exit) after a pause that lets
 * the launcher forward what this process wrote: MPICH's Hydra handles an abort on another
 * channel than the output and could exit with the message still unread. */
void watchdog_end_job(int status) __attribute__((noreturn));

/* The watchdog's limit for a tool whose waits time out after `timeout` seconds: a quarter more
 * plus 2 s, so that a wait that can time out (naming the peer it waited for) does so first. */
double watchdog_limit(double timeout);

#endif
