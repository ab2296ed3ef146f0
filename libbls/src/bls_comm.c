/*
 * The public calls: creation (settings checked and agreed by every process, the mode's
 * operations bound once), argument checks before anything is posted, then the mode.
 */
#define _GNU_SOURCE
#include "bls_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bls_range {
    size_t lo, hi;
    int peer;
};

void bls_config_init(bls_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mode = BLS_MODE_BLS;
    cfg->lag = 1;
    cfg->datatype = MPI_BYTE;
    cfg->max_block = 0;
    cfg->max_send = NULL;
    cfg->timeout = 60.0;
    cfg->poll_max_us = 50;
    cfg->progress = BLS_PROGRESS_THREAD;
}

/* The operations of a mode, or NULL. */
static const bls_mode_ops_t *mode_ops(bls_mode_t mode)
{
    switch (mode) {
    case BLS_MODE_BLS: return &bls_lagged_ops;
    case BLS_MODE_SYNC: return &bls_sync_ops;
    case BLS_MODE_IALLTOALLV: return &bls_ialltoallv_ops;
    case BLS_MODE_WINDOW: return &bls_window_ops;
    }
    return NULL;
}

/* Checks that need no communication; returns BLS_OK or an error with its message set. */
static bls_status_t check_local_config(const bls_config_t *cfg, int size, size_t *elem_p)
{
    const bls_mode_ops_t *ops = mode_ops(cfg->mode);
    if (!ops)
        return bls_error(BLS_ERR_ARG,
                         "bls_comm_create: mode %d is not one of BLS_MODE_BLS, "
                         "BLS_MODE_SYNC, BLS_MODE_IALLTOALLV, BLS_MODE_WINDOW",
                         (int)cfg->mode);
    if (cfg->lag < 0 || cfg->lag > BLS_MAX_LAG)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: lag %d is outside [0, %d]", cfg->lag,
                         BLS_MAX_LAG);
    if (cfg->poll_max_us < 0 || cfg->poll_max_us > 1000000)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: poll_max_us %d is outside [0, 1000000]",
                         cfg->poll_max_us);
    if (cfg->progress != BLS_PROGRESS_THREAD && cfg->progress != BLS_PROGRESS_CALLER &&
        cfg->progress != BLS_PROGRESS_THREAD_NORMAL)
        return bls_error(BLS_ERR_ARG,
                         "bls_comm_create: progress %d is not BLS_PROGRESS_THREAD, "
                         "BLS_PROGRESS_CALLER or BLS_PROGRESS_THREAD_NORMAL",
                         (int)cfg->progress);
    if (cfg->datatype == MPI_DATATYPE_NULL)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: datatype is MPI_DATATYPE_NULL");
    int tsize = 0;
    MPI_Aint lb = 0, extent = 0;
    if (MPI_Type_size(cfg->datatype, &tsize) != MPI_SUCCESS ||
        MPI_Type_get_extent(cfg->datatype, &lb, &extent) != MPI_SUCCESS)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: datatype is not a valid MPI datatype");
    if (tsize <= 0 || lb != 0 || extent != (MPI_Aint)tsize)
        return bls_error(BLS_ERR_ARG,
                         "bls_comm_create: datatype must be contiguous with a non-zero size "
                         "(size %d, lower bound %ld, extent %ld)",
                         tsize, (long)lb, (long)extent);
    *elem_p = (size_t)tsize;
    for (int q = 0; q < size && cfg->max_send; q++)
        if (cfg->max_send[q] > SIZE_MAX / 4 / (size_t)tsize)
            return bls_error(BLS_ERR_ARG, "bls_comm_create: max_send[%d] = %zu is too large", q,
                             cfg->max_send[q]);
    if (cfg->max_block > SIZE_MAX / 4 / (size_t)tsize)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: max_block %zu is too large",
                         cfg->max_block);
    if (ops->needs_thread_multiple && cfg->progress != BLS_PROGRESS_CALLER) {
        int provided = MPI_THREAD_SINGLE;
        MPI_Query_thread(&provided);
        if (provided != MPI_THREAD_MULTIPLE)
            return bls_error(BLS_ERR_THREAD,
                             "bls_comm_create: BLS mode needs MPI_THREAD_MULTIPLE, but MPI "
                             "provides level %d; initialise MPI with MPI_Init_thread(..., "
                             "MPI_THREAD_MULTIPLE, ...)",
                             provided);
    }
    return BLS_OK;
}

/*
 * Every process learns every other's verdict and settings, so a bad configuration on one
 * process fails creation everywhere instead of leaving the others in a collective.
 */
static bls_status_t agree_on_config(MPI_Comm comm, int rank, int size, bls_status_t local,
                                    const bls_config_t *cfg, size_t elem)
{
    int mine[4] = {(int)local, (int)cfg->mode, cfg->lag, (int)elem};
    int *all = malloc(sizeof(int) * 4 * (size_t)size);
    if (!all)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    int rc = MPI_Allgather(mine, 4, MPI_INT, all, 4, MPI_INT, comm);
    if (rc != MPI_SUCCESS) {
        free(all);
        return bls_mpi_error(rc, "bls_comm_create: MPI_Allgather of the settings");
    }
    bls_status_t st = local;
    for (int p = 0; p < size && st == BLS_OK; p++) {
        const int *o = all + 4 * p;
        if (o[0] != BLS_OK)
            st = bls_error(BLS_ERR_CONFIG, "bls_comm_create: rank %d rejected its settings (%s)", p,
                           bls_strerror((bls_status_t)o[0]));
        else if (o[1] != mine[1] || o[2] != mine[2] || o[3] != mine[3])
            st = bls_error(BLS_ERR_CONFIG,
                           "bls_comm_create: rank %d has mode %d, lag %d, element size %d but "
                           "rank %d has mode %d, lag %d, element size %d",
                           rank, mine[1], mine[2], mine[3], p, o[1], o[2], o[3]);
    }
    free(all);
    return st;
}

/* The state every mode shares: settings, maxima, the ring; all allocated now, never later. */
static bls_status_t alloc_common(bls_comm_t *c, const bls_config_t *cfg)
{
    size_t P = (size_t)c->size, S = (size_t)c->nslots;
    c->max_send = calloc(P, sizeof(size_t));
    c->max_recv = calloc(P, sizeof(size_t));
    c->ring = calloc(S, sizeof(bls_iter_rec_t));
    c->ranges = calloc(P, sizeof(struct bls_range));
    enum { REC_ARRAYS = 5 }; /* expected, rdispls, arrived, sendcounts, sdispls */
    size_t *rec_arrays = calloc(REC_ARRAYS * S * P, sizeof(size_t));
    unsigned char *have = calloc(S * P, 1);
    if (!c->max_send || !c->max_recv || !c->ring || !c->ranges || !rec_arrays || !have) {
        free(rec_arrays);
        free(have);
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    }
    for (size_t s = 0; s < S; s++) {
        bls_iter_rec_t *rec = &c->ring[s];
        rec->iter = -1;
        rec->expected = rec_arrays + (REC_ARRAYS * s + 0) * P;
        rec->rdispls = rec_arrays + (REC_ARRAYS * s + 1) * P;
        rec->arrived = rec_arrays + (REC_ARRAYS * s + 2) * P;
        rec->sendcounts = rec_arrays + (REC_ARRAYS * s + 3) * P;
        rec->sdispls = rec_arrays + (REC_ARRAYS * s + 4) * P;
        rec->have = have + s * P;
    }
    for (size_t q = 0; q < P; q++)
        c->max_send[q] = cfg->max_send ? cfg->max_send[q] : cfg->max_block;
    c->buffer_bytes = S * (sizeof(bls_iter_rec_t) + REC_ARRAYS * P * sizeof(size_t) + P);
    return BLS_OK;
}

/* The private duplicate of the communicator, errors returned, and the element datatype. */
static bls_status_t dup_comm(bls_comm_t *c, MPI_Comm comm)
{
    int rc = MPI_Comm_dup(comm, &c->mpi);
    if (rc != MPI_SUCCESS) {
        c->mpi = MPI_COMM_NULL;
        return bls_mpi_error(rc, "bls_comm_create: MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    if (c->elem > 1) { /* counts stay in elements: one contiguous element of the declared size */
        if (MPI_Type_contiguous((int)c->elem, MPI_BYTE, &c->elem_type) != MPI_SUCCESS ||
            MPI_Type_commit(&c->elem_type) != MPI_SUCCESS) {
            c->elem_type = MPI_BYTE;
            return bls_error(BLS_ERR_MPI, "bls_comm_create: cannot build the element datatype");
        }
    }
    return BLS_OK;
}

/* Receivers size their slots from what each sender declared. */
static bls_status_t exchange_maxima(bls_comm_t *c)
{
    size_t P = (size_t)c->size;
    uint64_t *out = malloc(2 * P * sizeof(uint64_t));
    if (!out)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    for (size_t q = 0; q < P; q++)
        out[q] = c->max_send[q];
    int rc = MPI_Alltoall(out, 1, MPI_UINT64_T, out + P, 1, MPI_UINT64_T, c->mpi);
    for (size_t p = 0; p < P && rc == MPI_SUCCESS; p++)
        c->max_recv[p] = (size_t)out[P + p];
    free(out);
    return rc == MPI_SUCCESS
               ? BLS_OK
               : bls_mpi_error(rc, "bls_comm_create: MPI_Alltoall of the block maxima");
}

bls_status_t bls_comm_create(MPI_Comm comm, const bls_config_t *cfg, bls_comm_t **comm_p)
{
    if (!cfg || !comm_p)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: cfg and comm_p must not be NULL");
    *comm_p = NULL;
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized || comm == MPI_COMM_NULL)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: MPI is not initialised or comm is "
                                      "MPI_COMM_NULL");
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    size_t elem = 1;
    char local_msg[BLS_MSG_LEN];
    bls_status_t st = check_local_config(cfg, size, &elem);
    snprintf(local_msg, sizeof(local_msg), "%s", bls_last_error());
    bls_status_t agreed = agree_on_config(comm, rank, size, st, cfg, elem);
    if (st != BLS_OK) /* our own reason is the most useful message */
        return bls_error(st, "%s", local_msg);
    if (agreed != BLS_OK)
        return agreed;

    bls_comm_t *c = calloc(1, sizeof(*c));
    if (!c)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    *c = (bls_comm_t){.ops = mode_ops(cfg->mode),
                      .mpi = MPI_COMM_NULL,
                      .rank = rank,
                      .size = size,
                      .lag = cfg->lag,
                      .nslots = cfg->lag + 2,
                      .elem = elem,
                      .elem_type = MPI_BYTE,
                      .timeout = cfg->timeout,
                      .poll_max_us = cfg->poll_max_us,
                      .progress = cfg->progress};
    st = alloc_common(c, cfg);
    if (st == BLS_OK)
        st = dup_comm(c, comm);
    if (st == BLS_OK)
        st = exchange_maxima(c);
    if (st == BLS_OK)
        st = c->ops->start(c);
    if (st != BLS_OK) {
        bls_comm_destroy(c);
        return st;
    }
    *comm_p = c;
    return BLS_OK;
}

void bls_comm_destroy(bls_comm_t *c)
{
    if (!c)
        return;
    c->ops->stop(c);
    if (c->elem_type != MPI_BYTE)
        MPI_Type_free(&c->elem_type);
    if (c->mpi != MPI_COMM_NULL)
        MPI_Comm_free(&c->mpi);
    if (c->ring) {
        free(c->ring[0].expected);
        free(c->ring[0].have);
    }
    free(c->ring);
    free(c->ranges);
    free(c->max_send);
    free(c->max_recv);
    free(c);
}

static int range_cmp(const void *a, const void *b)
{
    const struct bls_range *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Validates one post's arguments against the declared maxima (no communication). */
static bls_status_t check_post_args(bls_comm_t *c, const bls_post_args_t *a)
{
    bls_iter_t k = c->n_posted;
    const void *sendbuf = a->sendbuf, *recvbuf = a->recvbuf;
    const size_t *sendcounts = a->sendcounts, *sdispls = a->sdispls, *recvcounts = a->recvcounts,
                 *rdispls = a->rdispls;
    if (!sendcounts || !sdispls || !rdispls)
        return bls_error(BLS_ERR_ARG,
                         "bls_post (iteration %lld): sendcounts, sdispls and "
                         "rdispls must not be NULL",
                         (long long)k);
    size_t limit = SIZE_MAX / 2 / c->elem;
    for (int q = 0; q < c->size; q++) {
        if (sendcounts[q] > c->max_send[q])
            return bls_error(BLS_ERR_TOO_LARGE,
                             "bls_post (iteration %lld): block for peer %d has %zu elements, "
                             "more than the declared maximum %zu",
                             (long long)k, q, sendcounts[q], c->max_send[q]);
        if (sendcounts[q] > 0 && !sendbuf)
            return bls_error(BLS_ERR_ARG,
                             "bls_post (iteration %lld): sendbuf is NULL but "
                             "sendcounts[%d] = %zu",
                             (long long)k, q, sendcounts[q]);
        if (sdispls[q] > limit - sendcounts[q])
            return bls_error(BLS_ERR_ARG, "bls_post (iteration %lld): sdispls[%d] = %zu overflows",
                             (long long)k, q, sdispls[q]);
    }
    if (!recvcounts && c->ops->needs_recvcounts)
        return bls_error(BLS_ERR_ARG,
                         "bls_post (iteration %lld): %s mode needs the receive "
                         "counts (recvcounts is NULL)",
                         (long long)k, c->ops->name);
    int n = 0;
    for (int p = 0; p < c->size; p++) {
        size_t len = recvcounts ? recvcounts[p] : c->max_recv[p];
        if (recvcounts && recvcounts[p] > c->max_recv[p])
            return bls_error(BLS_ERR_TOO_LARGE,
                             "bls_post (iteration %lld): expects %zu elements from peer %d, "
                             "which declared at most %zu",
                             (long long)k, recvcounts[p], p, c->max_recv[p]);
        if (len == 0)
            continue;
        if (!recvbuf)
            return bls_error(BLS_ERR_ARG,
                             "bls_post (iteration %lld): recvbuf is NULL but the "
                             "block from peer %d may hold %zu elements",
                             (long long)k, p, len);
        if (rdispls[p] > limit - len)
            return bls_error(BLS_ERR_ARG, "bls_post (iteration %lld): rdispls[%d] = %zu overflows",
                             (long long)k, p, rdispls[p]);
        c->ranges[n++] = (struct bls_range){rdispls[p], rdispls[p] + len, p};
    }
    qsort(c->ranges, (size_t)n, sizeof(c->ranges[0]), range_cmp);
    for (int i = 1; i < n; i++)
        if (c->ranges[i].lo < c->ranges[i - 1].hi)
            return bls_error(
                BLS_ERR_ARG,
                "bls_post (iteration %lld): receive blocks of peers %d [%zu, %zu) "
                "and %d [%zu, %zu) overlap%s",
                (long long)k, c->ranges[i - 1].peer, c->ranges[i - 1].lo, c->ranges[i - 1].hi,
                c->ranges[i].peer, c->ranges[i].lo, c->ranges[i].hi,
                recvcounts ? "" : " (counts unknown: each needs room for its maximum)");
    return BLS_OK;
}

bls_status_t bls_post(bls_comm_t *c, const void *sendbuf, const size_t *sendcounts,
                      const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                      const size_t *rdispls, bls_iter_t *iter_p)
{
    if (!c || !iter_p)
        return bls_error(BLS_ERR_ARG, "bls_post: comm and iter_p must not be NULL");
    if (c->finishing)
        return bls_error(BLS_ERR_STATE, "bls_post: bls_finish() was called; no more posts");
    bls_post_args_t a = {sendbuf, sendcounts, sdispls, recvbuf, recvcounts, rdispls};
    bls_status_t st = check_post_args(c, &a);
    return st != BLS_OK ? st : c->ops->post(c, &a, iter_p);
}

bls_status_t bls_wait(bls_comm_t *c, bls_iter_t iter, size_t *recvcounts_out)
{
    if (!c)
        return bls_error(BLS_ERR_ARG, "bls_wait: comm must not be NULL");
    bls_status_t st = bls_find_unreported(c, iter, "bls_wait");
    return st != BLS_OK ? st : c->ops->wait(c, iter, 1, NULL, recvcounts_out);
}

bls_status_t bls_test(bls_comm_t *c, bls_iter_t iter, int *flag_p, size_t *recvcounts_out)
{
    if (!c || !flag_p)
        return bls_error(BLS_ERR_ARG, "bls_test: comm and flag_p must not be NULL");
    *flag_p = 0;
    bls_status_t st = bls_find_unreported(c, iter, "bls_test");
    return st != BLS_OK ? st : c->ops->wait(c, iter, 0, flag_p, recvcounts_out);
}

bls_status_t bls_wait_any(bls_comm_t *c, bls_iter_t *iter_p, size_t *recvcounts_out)
{
    if (!c || !iter_p)
        return bls_error(BLS_ERR_ARG, "bls_wait_any: comm and iter_p must not be NULL");
    return c->ops->wait_any(c, iter_p, recvcounts_out);
}

bls_status_t bls_finish(bls_comm_t *c)
{
    if (!c)
        return bls_error(BLS_ERR_ARG, "bls_finish: comm must not be NULL");
    if (c->finished)
        return bls_error(BLS_ERR_STATE, "bls_finish: already called");
    c->finishing = 1;
    bls_status_t st = c->ops->finish(c);
    if (st != BLS_ERR_TIMEOUT)
        c->finished = 1;
    return st;
}

bls_status_t bls_progress(bls_comm_t *c)
{
    if (!c)
        return bls_error(BLS_ERR_ARG, "bls_progress: comm must not be NULL");
    return c->ops->progress ? c->ops->progress(c) : BLS_OK;
}

bls_status_t bls_comm_set_timeout(bls_comm_t *c, double seconds)
{
    if (!c)
        return bls_error(BLS_ERR_ARG, "bls_comm_set_timeout: comm must not be NULL");
    c->timeout = seconds;
    return BLS_OK;
}

bls_status_t bls_pending_peers(bls_comm_t *c, bls_iter_t iter, char *buf, size_t len)
{
    if (!c || !buf || len < 32)
        return bls_error(BLS_ERR_ARG, "bls_pending_peers: comm and buf (32 bytes or more) needed");
    bls_status_t st = bls_find_unreported(c, iter, "bls_pending_peers");
    if (st == BLS_OK)
        c->ops->pending(c, iter, buf, len);
    return st;
}

bls_status_t bls_comm_set_notify(bls_comm_t *c, bls_notify_fn fn, void *arg)
{
    if (!c)
        return bls_error(BLS_ERR_ARG, "bls_comm_set_notify: comm must not be NULL");
    if (c->n_posted > 0)
        return bls_error(BLS_ERR_STATE, "bls_comm_set_notify: set it before the first post");
    c->notify = fn;
    c->notify_arg = arg;
    return BLS_OK;
}

bls_status_t bls_comm_stats(const bls_comm_t *c, bls_stats_t *s)
{
    if (!c || !s)
        return bls_error(BLS_ERR_ARG, "bls_comm_stats: comm and stats_p must not be NULL");
    memset(s, 0, sizeof(*s));
    s->posted = c->n_posted;
    s->completed = c->n_completed;
    s->post_wait_seconds = c->post_wait_seconds;
    s->wait_seconds = c->wait_seconds;
    s->buffer_bytes = c->buffer_bytes;
    s->copy_peers = c->copy_peers;
    s->progress_cpu_seconds = c->ops->cpu(c);
    s->progress_standby_seconds = c->ops->standby ? c->ops->standby(c) : 0.0;
    return BLS_OK;
}
