/*
 * Completion notification (bls_comm_set_notify), the way a runtime with its own request
 * objects uses it: a consumer thread sleeps until notified, then reports the iteration with
 * bls_test, which must find it complete at once.  Every iteration must be notified exactly
 * once, its bytes must be exact, and the main thread never waits in the library (it only
 * posts, after the consumer reported iteration k-L-1).  Rank 1 sleeps in some iterations so
 * completions arrive while the main thread is elsewhere.  Also: setting the hook after the
 * first post is BLS_ERR_STATE.  Run for both modes.
 *
 * Usage: test_notify [--lag L] [--iters N] [--bytes B] [--sync]
 */
#include "testutil.h"

#include <pthread.h>

typedef struct {
    pthread_mutex_t mu; /* never held around calls into libbls (the hook's rule) */
    pthread_cond_t cv;
    long *notified;     /* [iters] times each iteration was notified */
    long n_notified, bad_ids, fatal;
    long reported;      /* iterations the consumer reported */
    long posted;
    long iters;
    int stop;
} shared_t;

static void on_complete(void *arg, bls_iter_t iter)
{
    shared_t *s = arg;
    pthread_mutex_lock(&s->mu);
    if (iter < 0)
        s->fatal++;
    else if (iter >= s->iters)
        s->bad_ids++;
    else
        s->notified[iter]++;
    s->n_notified++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

typedef struct {
    shared_t *s;
    bls_comm_t *comm;
    pthread_mutex_t *comm_mu; /* serialises calls into the communicator */
    unsigned char **recv;
    int nbuf, rank, P;
    size_t bytes;
    uint64_t seed;
} consumer_t;

static void *consumer(void *arg)
{
    consumer_t *c = arg;
    shared_t *s = c->s;
    for (long k = 0; k < s->iters; k++) {
        pthread_mutex_lock(&s->mu);
        double deadline = tu_now() + 60;
        while (s->notified[k] == 0 && tu_now() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 10000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        int got = s->notified[k] > 0;
        pthread_mutex_unlock(&s->mu);
        CHECK(got, "iteration %ld was never notified", k);
        if (!got)
            return NULL;
        int flag = 0;
        pthread_mutex_lock(c->comm_mu);
        bls_status_t st = bls_test(c->comm, k, &flag, NULL);
        pthread_mutex_unlock(c->comm_mu);
        CHECK(st == BLS_OK, "bls_test(%ld): %s", k, bls_last_error());
        CHECK(flag == 1, "iteration %ld was notified but bls_test finds it incomplete", k);
        const unsigned char *r = c->recv[k % c->nbuf];
        for (int p = 0; p < c->P; p++) {
            size_t bad = tu_verify(r + (size_t)p * c->bytes, c->bytes, c->seed, p, c->rank, k);
            CHECK(bad == c->bytes, "iteration %ld from %d: byte %zu of %zu wrong", k, p, bad,
                  c->bytes);
        }
        pthread_mutex_lock(&s->mu);
        s->reported = k + 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    int lag = (int)tu_opt(argc, argv, "--lag", 2);
    long iters = tu_opt(argc, argv, "--iters", 200);
    size_t bytes = (size_t)tu_opt(argc, argv, "--bytes", 256);
    int sync = tu_opt(argc, argv, "--sync", 0) != 0;
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    const uint64_t seed = 4242;

    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.lag = lag;
    cfg.mode = sync ? BLS_MODE_SYNC : BLS_MODE_BLS;
    cfg.max_block = bytes;
    cfg.timeout = 60;
    bls_comm_t *comm;
    REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));

    shared_t s = {.iters = iters};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.notified = calloc((size_t)iters, sizeof(long));
    REQUIRE_OK(bls_comm_set_notify(comm, on_complete, &s));

    int nbuf = lag + 1;
    unsigned char **send = calloc((size_t)nbuf, sizeof(*send));
    unsigned char **recv = calloc((size_t)nbuf, sizeof(*recv));
    for (int i = 0; i < nbuf; i++) {
        send[i] = malloc(bytes * (size_t)P + 1);
        recv[i] = malloc(bytes * (size_t)P + 1);
    }
    size_t *cnt = calloc((size_t)P, sizeof(size_t)), *dsp = calloc((size_t)P, sizeof(size_t));
    for (int q = 0; q < P; q++) {
        cnt[q] = bytes;
        dsp[q] = (size_t)q * bytes;
    }
    pthread_mutex_t comm_mu = PTHREAD_MUTEX_INITIALIZER;
    consumer_t con = {&s, comm, &comm_mu, recv, nbuf, rank, P, bytes, seed};
    pthread_t th;
    pthread_create(&th, NULL, consumer, &con);

    for (long k = 0; k < iters; k++) {
        /* The bound at this level: iteration k-L-1 reported before k is posted (so its buffer
         * pair is free again), exactly what bls_post itself would wait for. */
        pthread_mutex_lock(&s.mu);
        double deadline = tu_now() + 60;
        while (s.reported < k - lag && tu_now() < deadline) {
            pthread_mutex_unlock(&s.mu);
            tu_sleep_us(50);
            pthread_mutex_lock(&s.mu);
        }
        int ok = s.reported >= k - lag;
        pthread_mutex_unlock(&s.mu);
        CHECK(ok, "iteration %ld: iteration %ld was not reported within 60 s", k, k - lag - 1);
        if (!ok)
            break;
        unsigned char *sb = send[k % nbuf];
        for (int q = 0; q < P; q++)
            tu_fill(sb + dsp[q], bytes, seed, rank, q, k);
        bls_iter_t id;
        pthread_mutex_lock(&comm_mu);
        bls_status_t st = bls_post(comm, sb, cnt, dsp, recv[k % nbuf], cnt, dsp, &id);
        pthread_mutex_unlock(&comm_mu);
        CHECK(st == BLS_OK && id == k, "bls_post(%ld): %s", k, bls_last_error());
        if (st != BLS_OK)
            break;
        if (k == 0) {
            pthread_mutex_lock(&comm_mu);
            st = bls_comm_set_notify(comm, NULL, NULL);
            pthread_mutex_unlock(&comm_mu);
            CHECK(st == BLS_ERR_STATE, "bls_comm_set_notify after a post returned %s",
                  bls_strerror(st));
        }
        if (rank == 1 && k % 7 == 3)
            tu_sleep_us(3000); /* completions at the others arrive while their main is away */
    }
    pthread_join(th, NULL);
    CHECK_OK(bls_finish(comm));

    long twice = 0;
    for (long k = 0; k < iters; k++)
        twice += s.notified[k] > 1;
    CHECK(twice == 0, "%ld iterations were notified more than once", twice);
    CHECK(s.bad_ids == 0 && s.fatal == 0, "%ld unknown ids and %ld failures notified", s.bad_ids,
          s.fatal);
    CHECK(s.n_notified == iters, "%ld notifications for %ld iterations", s.n_notified, iters);
    if (rank == 0)
        printf("%s, lag %d: %ld iterations notified once each and reported by the consumer\n",
               sync ? "SYNC" : "BLS", lag, iters);

    bls_comm_destroy(comm);
    for (int i = 0; i < nbuf; i++) {
        free(send[i]);
        free(recv[i]);
    }
    free(send);
    free(recv);
    free(cnt);
    free(dsp);
    free(s.notified);
    return tu_finish("test_notify");
}
