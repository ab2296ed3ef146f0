/*
 * Every error a caller can provoke: the status code and the words of the message that name
 * what was wrong.  Refused calls must leave the communicator usable: after them a normal
 * iteration still delivers every byte.  Runs on any number of processes (the count mismatch
 * needs 2 or more).
 */
#include "testutil.h"

#define EXPECT(expr, code, needle)                                                                 \
    do {                                                                                           \
        bls_status_t s_ = (expr);                                                                  \
        CHECK(s_ == (code), "%s returned %s, expected %s (%s)", #expr, bls_strerror(s_),           \
              bls_strerror(code), bls_last_error());                                               \
        CHECK(strstr(bls_last_error(), (needle)) != NULL, "%s: message '%s' lacks '%s'", #expr,    \
              bls_last_error(), (needle));                                                         \
    } while (0)

static int rank, P;

static void test_create_errors(void)
{
    bls_config_t cfg;
    bls_comm_t *comm = (bls_comm_t *)&cfg;
    bls_config_init(&cfg);
    cfg.lag = -1;
    EXPECT(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm), BLS_ERR_ARG, "lag -1");
    CHECK(comm == NULL, "failed create left a communicator");

    bls_config_init(&cfg);
    cfg.poll_max_us = -5;
    EXPECT(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm), BLS_ERR_ARG, "poll_max_us -5");
    bls_config_init(&cfg);
    cfg.progress = (bls_progress_mode_t)3;
    EXPECT(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm), BLS_ERR_ARG,
           "progress 3 is not BLS_PROGRESS_THREAD, BLS_PROGRESS_CALLER or "
           "BLS_PROGRESS_THREAD_NORMAL");

    MPI_Datatype strided;
    MPI_Type_vector(2, 1, 2, MPI_INT, &strided);
    MPI_Type_commit(&strided);
    bls_config_init(&cfg);
    cfg.datatype = strided;
    EXPECT(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm), BLS_ERR_ARG, "contiguous");
    MPI_Type_free(&strided);

    /* One process with different settings fails creation everywhere, naming both. */
    if (P > 1) {
        bls_config_init(&cfg);
        cfg.lag = rank == 0 ? 1 : 2;
        EXPECT(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm), BLS_ERR_CONFIG, "lag");
        /* One process rejecting its own settings fails the others too. */
        bls_config_init(&cfg);
        cfg.lag = rank == P - 1 ? -3 : 1;
        EXPECT(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm),
               rank == P - 1 ? BLS_ERR_ARG : BLS_ERR_CONFIG,
               rank == P - 1 ? "lag -3" : "rejected its settings");
    }
    EXPECT(bls_comm_create(MPI_COMM_WORLD, NULL, &comm), BLS_ERR_ARG, "NULL");
}

/* A run of iterations with lag 1 and 4-byte elements, after or between refused calls. */
static void good_iterations(bls_comm_t *comm, int64_t *next, int n)
{
    int count = 4; /* elements per peer */
    int *sendbuf = malloc(sizeof(int) * (size_t)(count * P)),
        *recv = malloc(sizeof(int) * (size_t)(count * P));
    size_t *c = calloc((size_t)P, sizeof(size_t)), *d = calloc((size_t)P, sizeof(size_t));
    for (int q = 0; q < P; q++) {
        c[q] = (size_t)count;
        d[q] = (size_t)(q * count);
    }
    for (int i = 0; i < n; i++) {
        for (int q = 0; q < P; q++)
            for (int e = 0; e < count; e++)
                sendbuf[q * count + e] = (int)(*next * 1000000 + rank * 1000 + q * 10 + e);
        bls_iter_t id;
        CHECK_OK(bls_post(comm, sendbuf, c, d, recv, c, d, &id));
        CHECK(id == *next, "iteration id %lld, expected %lld", (long long)id, (long long)*next);
        CHECK_OK(bls_wait(comm, id, NULL));
        for (int p = 0; p < P; p++)
            for (int e = 0; e < count; e++)
                CHECK(recv[p * count + e] == (int)(*next * 1000000 + p * 1000 + rank * 10 + e),
                      "iteration %lld from %d element %d: %d", (long long)id, p, e,
                      recv[p * count + e]);
        (*next)++;
    }
    free(sendbuf);
    free(recv);
    free(c);
    free(d);
}

/* Posts refused before anything moves: arguments and declared maxima.  Nothing is posted. */
static void refused_posts(bls_comm_t *comm, bls_mode_t mode, size_t *c, size_t *d)
{
    int needs_counts = mode == BLS_MODE_IALLTOALLV || mode == BLS_MODE_WINDOW;
    int buf[64 * 4 + 8] = {0}, rbuf[64 * 4 + 8] = {0};
    bls_iter_t id;
    EXPECT(bls_post(comm, buf, NULL, d, rbuf, c, d, &id), BLS_ERR_ARG, "must not be NULL");
    EXPECT(bls_post(comm, NULL, c, d, rbuf, c, d, &id), BLS_ERR_ARG, "sendbuf is NULL");
    EXPECT(bls_post(comm, buf, c, d, NULL, c, d, &id), BLS_ERR_ARG, "recvbuf is NULL");
    c[P - 1] = 5;
    char want[96];
    snprintf(want, sizeof(want),
             "block for peer %d has 5 elements, more than the declared "
             "maximum 4",
             P - 1);
    EXPECT(bls_post(comm, buf, c, d, rbuf, NULL, d, &id), BLS_ERR_TOO_LARGE, want);
    c[P - 1] = (size_t)-1; /* a negative count cast by a careless caller */
    EXPECT(bls_post(comm, buf, c, d, rbuf, NULL, d, &id), BLS_ERR_TOO_LARGE, "declared maximum");
    c[P - 1] = 4;
    size_t rc[64];
    for (int p = 0; p < P; p++)
        rc[p] = 4;
    rc[0] = 6;
    EXPECT(bls_post(comm, buf, c, d, rbuf, rc, d, &id), BLS_ERR_TOO_LARGE,
           "expects 6 elements from peer 0");
    if (P > 1) {
        size_t od[64];
        for (int p = 0; p < P; p++)
            od[p] = (size_t)p * 4;
        od[1] = 2; /* overlaps peer 0's [0, 4) */
        EXPECT(bls_post(comm, buf, c, d, rbuf, c, od, &id), BLS_ERR_ARG, "overlap");
        /* Unknown counts reserve each peer's maximum: blocks 3 apart overlap. */
        for (int p = 0; p < P; p++)
            od[p] = (size_t)p * 3;
        EXPECT(bls_post(comm, buf, c, d, rbuf, NULL, od, &id), BLS_ERR_ARG,
               needs_counts ? "needs the receive counts" : "counts unknown");
    }
    if (needs_counts) {
        snprintf(want, sizeof(want), "%s mode needs the receive counts", bls_mode_name(mode));
        EXPECT(bls_post(comm, buf, c, d, rbuf, NULL, d, &id), BLS_ERR_ARG, want);
    }
    EXPECT(bls_wait(comm, 99, NULL), BLS_ERR_STATE, "iteration 99 was never posted");
    EXPECT(bls_wait(comm, 0, NULL), BLS_ERR_STATE, "iteration 0 was already reported");
}

/* Calls out of order: waiting for nothing, posting too far without reporting. */
static void state_errors(bls_comm_t *comm, size_t *c, size_t *d, int64_t *next_p)
{
    int buf[64 * 4 + 8] = {0}, rbuf[64 * 4 + 8] = {0};
    bls_iter_t id;
    int64_t next = *next_p;
    /* Waiting for nothing, then posting too far without reporting: iteration k needs k-L-2
     * reported (lag 1: the 4th unreported post is refused). */
    EXPECT(bls_wait_any(comm, &id, NULL), BLS_ERR_STATE, "no posted iteration is unreported");
    for (int i = 0; i < 3; i++)
        CHECK_OK(bls_post(comm, buf, c, d, rbuf, c, d, &id));
    EXPECT(bls_post(comm, buf, c, d, rbuf, c, d, &id), BLS_ERR_STATE, "was never waited for");
    for (int i = 0; i < 3; i++) {
        bls_iter_t got = -1;
        CHECK_OK(bls_wait_any(comm, &got, NULL));
        CHECK(got == next + i, "bls_wait_any reported %lld, expected the lowest %lld",
              (long long)got, (long long)(next + i));
    }
    next += 3;
    good_iterations(comm, &next, 1);

    *next_p = next;
}

/* Count mismatch: in iteration `next`, rank 0 sends 3 elements to rank 1, which expects 4;
 * the other iterations are unaffected.  BLS and WINDOW modes: an MPI collective cannot tell.
 * Unknown counts (BLS mode only) report what arrived instead. */
static void count_mismatch(bls_comm_t *comm, bls_mode_t mode, size_t *c, size_t *d, int64_t *next_p)
{
    int buf[64 * 4 + 8] = {0}, rbuf[64 * 4 + 8] = {0};
    size_t rc[64];
    char want[96];
    bls_iter_t id;
    int64_t next = *next_p;
    if (P > 1 && (mode == BLS_MODE_BLS || mode == BLS_MODE_WINDOW)) {
        for (int p = 0; p < P; p++)
            rc[p] = 4;
        if (mode == BLS_MODE_BLS) {
            for (int q = 0; q < P; q++)
                buf[q * 4] = 7;
            c[1] = rank == 0 ? 3 : 4;
            CHECK_OK(bls_post(comm, buf, c, d, rbuf, NULL, d, &id));
            c[1] = 4;
            if (rank == 1) {
                /* Counts not stated (NULL): no error, the counts that arrived are reported. */
                size_t got[64];
                CHECK_OK(bls_wait(comm, id, got));
                CHECK(got[0] == 3 && (P < 3 || got[2] == 4), "reported counts %zu, %zu", got[0],
                      P < 3 ? (size_t)4 : got[2]);
            } else {
                CHECK_OK(bls_wait(comm, id, NULL));
            }
            next++;
        }
        c[1] = rank == 0 ? 3 : 4;
        CHECK_OK(bls_post(comm, buf, c, d, rbuf, rc, d, &id));
        c[1] = 4;
        if (rank == 1) {
            snprintf(want, sizeof(want), "iteration %lld, peer 0: expected 4 elements, received 3",
                     (long long)id);
            EXPECT(bls_wait(comm, id, NULL), BLS_ERR_COUNT, want);
        } else {
            CHECK_OK(bls_wait(comm, id, NULL));
        }
        next++;
        good_iterations(comm, &next, 2);
    }

    *next_p = next;
}

static void test_post_errors(bls_mode_t mode)
{
    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.mode = mode;
    cfg.lag = 1;
    cfg.datatype = MPI_INT;
    cfg.max_block = 4;
    cfg.timeout = 60;
    bls_comm_t *comm;
    REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));
    size_t *c = calloc((size_t)P, sizeof(size_t)), *d = calloc((size_t)P, sizeof(size_t));
    for (int q = 0; q < P; q++) {
        c[q] = 4;
        d[q] = (size_t)q * 4;
    }
    int64_t next = 0;
    good_iterations(comm, &next, 2);
    refused_posts(comm, mode, c, d);
    bls_stats_t st;
    CHECK_OK(bls_comm_stats(comm, &st));
    CHECK(st.posted == 2, "refused posts changed the count: %lld", (long long)st.posted);
    good_iterations(comm, &next, 3); /* still usable after all that */
    state_errors(comm, c, d, &next);
    count_mismatch(comm, mode, c, d, &next);
    int buf[64 * 4 + 8] = {0}, rbuf[64 * 4 + 8] = {0};
    bls_iter_t id;
    CHECK_OK(bls_finish(comm));
    EXPECT(bls_finish(comm), BLS_ERR_STATE, "already called");
    EXPECT(bls_post(comm, buf, c, d, rbuf, c, d, &id), BLS_ERR_STATE, "bls_finish() was called");
    bls_comm_destroy(comm);
    free(c);
    free(d);
}

/* Modes by name, as tools take them. */
static void test_mode_names(void)
{
    bls_mode_t m;
    int lag;
    CHECK(bls_mode_parse("bls:3", 9, &m, &lag) == BLS_OK && m == BLS_MODE_BLS && lag == 3, "bls:3");
    CHECK(bls_mode_parse("bls", 9, &m, &lag) == BLS_OK && m == BLS_MODE_BLS && lag == 9, "bls");
    CHECK(bls_mode_parse("window", 2, &m, &lag) == BLS_OK && m == BLS_MODE_WINDOW && lag == 2,
          "window");
    CHECK(bls_mode_parse("ialltoallv", 9, &m, &lag) == BLS_OK && m == BLS_MODE_IALLTOALLV &&
              lag == 0,
          "ialltoallv");
    CHECK(bls_mode_parse("sync", 9, &m, &lag) == BLS_OK && m == BLS_MODE_SYNC && lag == 0, "sync");
    CHECK(!strcmp(bls_mode_name(BLS_MODE_WINDOW), "window"), "name of WINDOW");
    char want[64];
    snprintf(want, sizeof(want), "lag %d is outside [0, %d]", BLS_MAX_LAG + 1, BLS_MAX_LAG);
    char spec[32];
    snprintf(spec, sizeof(spec), "bls:%d", BLS_MAX_LAG + 1);
    EXPECT(bls_mode_parse(spec, 1, &m, &lag), BLS_ERR_ARG, want);
    EXPECT(bls_mode_parse("bls:-1", 1, &m, &lag), BLS_ERR_ARG, "lag -1 is outside");
    EXPECT(bls_mode_parse("bls:x", 1, &m, &lag), BLS_ERR_ARG, "must be an integer");
    EXPECT(bls_mode_parse("sync:2", 1, &m, &lag), BLS_ERR_ARG, "sync takes no lag");
    EXPECT(bls_mode_parse("pairwise", 1, &m, &lag), BLS_ERR_ARG, "unknown mode 'pairwise'");
    bls_config_t cfg;
    bls_comm_t *comm;
    bls_config_init(&cfg);
    cfg.mode = (bls_mode_t)7;
    EXPECT(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm), BLS_ERR_ARG, "mode 7 is not one of");
}

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    if (P > 64) {
        fprintf(stderr, "test_errors runs on at most 64 processes\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    test_create_errors();
    test_post_errors(BLS_MODE_BLS);
    test_post_errors(BLS_MODE_SYNC);
    test_post_errors(BLS_MODE_IALLTOALLV);
    test_post_errors(BLS_MODE_WINDOW);
    test_mode_names();
    for (int s = BLS_OK; s <= BLS_ERR_CONFIG; s++)
        CHECK(strncmp(bls_strerror((bls_status_t)s), "BLS_", 4) == 0, "strerror(%d) = %s", s,
              bls_strerror((bls_status_t)s));
    bls_comm_destroy(NULL);
    return tu_finish("test_errors");
}
