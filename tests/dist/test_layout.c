/*
 * The layout of distributed inference (dlrm_dist.h), without MPI: placement (the reference's
 * contiguous blocks; balanced by cost, worked by hand), slices (every row once, in rank order,
 * sizes within one), the exchange's counts and displacements (what p sends q is what q
 * expects from p, buffers tiled without gaps or overlaps), and a whole exchange simulated by
 * copying blocks as MPI would: after dist_unpack every process holds, for each of its rows and
 * every table, exactly the vector the table's owner pooled for that row.
 * Usage: test_layout
 */
#include "dlrm_dist.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static void check_contiguous(void)
{
    for (int P = 1; P <= 8; P++)
        for (int T = P; T <= 30; T++) {
            dist_layout_t L;
            CHECK(dist_layout_init(&L, P, T, 4, DIST_PLACE_CONTIGUOUS, NULL) == DIST_OK,
                  "P=%d T=%d: %s", P, T, dist_last_error());
            int bad = 0;
            for (int p = 0; p < P; p++) {
                int want = T / P + (p < T % P); /* the first T mod P get one more */
                bad += L.first[p + 1] - L.first[p] != want;
                for (int i = L.first[p]; i < L.first[p + 1]; i++)
                    bad += L.owner[L.tables[i]] != p ||
                           (i > L.first[p] && L.tables[i] <= L.tables[i - 1]);
            }
            for (int t = 1; t < T; t++)
                bad += L.owner[t] < L.owner[t - 1]; /* blocks in rank order */
            CHECK(bad == 0, "P=%d T=%d: contiguous placement is not the reference's blocks", P, T);
            dist_layout_free(&L);
        }
}

static void check_balanced(void)
{
    /* Costs 5 1 4 2 3 on 2 processes, by decreasing cost: t0 (5) -> p0, t2 (4) -> p1,
     * t4 (3) -> p1 (4 < 5), t3 (2) -> p0 (5 < 7), t1 (1) -> p0 (7 = 7: the lower rank). */
    const double cost[] = {5, 1, 4, 2, 3};
    const int want[] = {0, 0, 1, 0, 1};
    dist_layout_t L;
    CHECK(dist_layout_init(&L, 2, 5, 8, DIST_PLACE_BALANCED, cost) == DIST_OK, "%s",
          dist_last_error());
    CHECK(memcmp(L.owner, want, sizeof(want)) == 0, "balanced owners %d %d %d %d %d", L.owner[0],
          L.owner[1], L.owner[2], L.owner[3], L.owner[4]);
    CHECK(L.first[1] == 3 && L.tables[0] == 0 && L.tables[1] == 1 && L.tables[2] == 3 &&
              L.tables[3] == 2 && L.tables[4] == 4,
          "process 0's tables ascending, then process 1's");
    dist_layout_free(&L);
    /* Equal costs keep table order: the same as round-robin over the least loaded. */
    const double same[] = {1, 1, 1, 1};
    CHECK(dist_layout_init(&L, 2, 4, 8, DIST_PLACE_BALANCED, same) == DIST_OK, "%s",
          dist_last_error());
    CHECK(L.owner[0] == 0 && L.owner[1] == 1 && L.owner[2] == 0 && L.owner[3] == 1,
          "equal costs: owners %d %d %d %d", L.owner[0], L.owner[1], L.owner[2], L.owner[3]);
    dist_layout_free(&L);
}

static void check_slices(void)
{
    int bad = 0;
    for (int P = 1; P <= 8; P++)
        for (int64_t n = 0; n <= 70; n++) {
            int64_t sum = 0, lo = 0;
            for (int q = 0; q < P; q++) {
                int64_t r = dist_slice_rows(q, P, n);
                bad += dist_slice_lo(q, P, n) != lo || r < n / P || r > n / P + 1;
                lo += r;
                sum += r;
            }
            bad += sum != n || dist_slice_lo(P, P, n) != n;
        }
    CHECK(bad == 0, "slices: %d rows missing, repeated or out of order", bad);
}

/* The vector table t pooled for sample g: element j. */
static float value(int64_t g, int t, int j)
{
    return (float)(g * 1000 + t * 10 + j);
}

/* One batch of n samples through a simulated exchange on P processes. */
static int exchange(const dist_layout_t *L, int64_t n)
{
    int P = L->P, T = L->T, d = L->d, bad = 0;
    float **send = calloc((size_t)P, sizeof(float *));
    size_t *sc = calloc((size_t)P * P, sizeof(size_t)), *sd = calloc((size_t)P * P, sizeof(size_t));
    for (int p = 0; p < P; p++) { /* p pools its tables for all n, sample-major (dlrm_embed) */
        int np = L->first[p + 1] - L->first[p];
        send[p] = malloc(sizeof(float) * ((size_t)n * np * d + 1));
        for (int64_t g = 0; g < n; g++)
            for (int i = 0; i < np; i++)
                for (int j = 0; j < d; j++)
                    send[p][((size_t)g * np + i) * d + j] = value(g, L->tables[L->first[p] + i], j);
        dist_send_layout(L, p, n, sc + (size_t)p * P, sd + (size_t)p * P);
    }
    size_t *rc = calloc((size_t)P, sizeof(size_t)), *rd = calloc((size_t)P, sizeof(size_t));
    for (int q = 0; q < P; q++) {
        dist_recv_layout(L, q, n, rc, rd);
        int64_t rows = dist_slice_rows(q, P, n), lo = dist_slice_lo(q, P, n);
        float *recv = malloc(sizeof(float) * ((size_t)rows * T * d + 1));
        float *pooled = malloc(sizeof(float) * ((size_t)rows * T * d + 1));
        size_t end = 0;
        for (int p = 0; p < P; p++) { /* what MPI does: p's block for q lands at rd[p] */
            bad += sc[(size_t)p * P + q] != rc[p] || rd[p] != end;
            memcpy(recv + rd[p], send[p] + sd[(size_t)p * P + q], sizeof(float) * rc[p]);
            end += rc[p];
        }
        bad += end != (size_t)rows * T * d;
        dist_unpack(L, q, n, recv, pooled);
        for (int64_t b = 0; b < rows; b++)
            for (int t = 0; t < T; t++)
                for (int j = 0; j < d; j++)
                    bad += pooled[((size_t)b * T + t) * d + j] != value(lo + b, t, j);
        free(recv);
        free(pooled);
    }
    for (int p = 0; p < P; p++)
        free(send[p]);
    free(send);
    free(sc);
    free(sd);
    free(rc);
    free(rd);
    return bad;
}

static void check_exchange(void)
{
    const double cost[] = {9, 1, 8, 2, 7, 3, 6};
    for (int P = 1; P <= 5; P++)
        for (int how = 0; how <= 1; how++)
            for (int64_t n = P; n <= 23; n += 3) {
                dist_layout_t L;
                CHECK(dist_layout_init(&L, P, 7, 3, how, cost) == DIST_OK, "%s", dist_last_error());
                int bad = exchange(&L, n);
                CHECK(bad == 0, "P=%d %s n=%lld: %d values wrong after the exchange", P,
                      how ? "balanced" : "contiguous", (long long)n, bad);
                dist_layout_free(&L);
            }
}

static void check_errors(void)
{
    dist_layout_t L;
    CHECK(dist_layout_init(&L, 4, 3, 8, DIST_PLACE_CONTIGUOUS, NULL) == DIST_ERR_ARG &&
              strstr(dist_last_error(), "3 tables for 4 processes: every process needs a table"),
          "fewer tables than processes: %s", dist_last_error());
    CHECK(dist_layout_init(&L, 0, 3, 8, DIST_PLACE_CONTIGUOUS, NULL) == DIST_ERR_ARG &&
              strstr(dist_last_error(), "0 processes"),
          "no processes: %s", dist_last_error());
    CHECK(L.owner == NULL && L.tables == NULL, "a failed layout holds memory");
}

int main(void)
{
    check_contiguous();
    check_balanced();
    check_slices();
    check_exchange();
    check_errors();
    printf("test_layout: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
