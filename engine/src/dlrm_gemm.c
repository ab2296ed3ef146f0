/*
 * The MLPs' Linear layers on the engine's own kernels: y = act(x W^T + b).
 *
 * Why not BLAS.  A sample's prediction must not depend on the batch it is in, its position
 * there, the process count or the thread count: a distributed run hands each process a slice
 * of every batch.  A BLAS sgemm promises nothing about the order in which it sums a dot
 * product, and OpenBLAS's kernels (chosen per CPU, or by OPENBLAS_CORETYPE) change it with the
 * number of rows: tail tiles, small-matrix paths, blocking.  So the engine computes every
 * output in one fixed order of its own, which no shape, tile or CPU can change:
 *
 *     s_0 = b[n],   s_{k+1} = fma(x[m][k], W[n][k], s_k)  for k = 0 .. K-1,   y[m][n] = act(s_K)
 *
 * one fused multiply-add per term, rounded once (IEEE 754 fusedMultiplyAdd, C's fmaf), in k
 * order.  Nothing else enters row m's result: not M, not the row's tile, not the other rows.
 * Each kernel below runs exactly this chain per output; the vector ones keep MR x NR chains
 * side by side, one lane per output, and never split a chain.  So the bits are the same with
 * AVX-512, with AVX2 + FMA and with the generic kernel (fmaf in C; correct on any CPU, slow
 * where the CPU has no FMA and libm emulates it), on every machine.
 *
 * Algorithm (a BLIS-style register-blocked kernel, as small as this engine needs):
 *  - The weights are packed once, when the model is made: panels of 16 outputs, each [K][16]
 *    (W^T's columns 16p .. 16p+15, zero past N), so a kernel reads 16 outputs' weights for
 *    input k as one aligned 64-byte line.  The bias is padded the same way.
 *  - A tile of MR rows of x meets every panel in turn.  It keeps MR x (panels x 16) sums in
 *    registers, starts them at the bias, runs the k loop (per k: one weight load per panel, one
 *    broadcast from each row of x, MR x panels FMAs) and stores with the ReLU fused.
 *  - x is read in place.  Packing it per tile, as BLIS does, cost up to 40% on the narrow
 *    layers (256-64, 64-16), whose few panels cannot repay the copy.  Only a batch's last rows,
 *    when no tile height fits them, are copied beside zero rows (computed, never stored).
 *  Tiles: AVX-512 12, 8 or 4 rows x 2 panels (24 of 32 registers hold sums); AVX2 + FMA 6, 4
 *  or 2 rows x 1 panel (12 of 16); generic 4 rows x 1 panel.  No K blocking: a panel, K x 16
 *  floats, stays in L2 for K up to thousands, and x's rows stream.
 *  Measured against OpenBLAS's sgemm on the reference's Kaggle layers: bench/RESULTS.md.
 */
#include "dlrm_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DLRM_X86 1
#endif

#define PANEL 16  /* outputs per packed panel */
#define MAX_MR 12 /* the tallest tile of any kernel */

size_t dlrm_linear_floats(int K, int N)
{
    size_t panels = (size_t)(N + PANEL - 1) / PANEL;
    return panels * PANEL * ((size_t)K + 1); /* the panels, then the padded bias */
}

void dlrm_linear_pack(const float *W, const float *b, int K, int N, float *dst, dlrm_linear_t *out)
{
    int panels = (N + PANEL - 1) / PANEL;
    float *bias = dst + (size_t)panels * PANEL * K;
    for (int p = 0; p < panels; p++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < PANEL; j++) {
                int n = p * PANEL + j;
                dst[((size_t)p * K + k) * PANEL + j] = n < N ? W[(size_t)n * K + k] : 0.0f;
            }
    for (int j = 0; j < panels * PANEL; j++)
        bias[j] = j < N ? b[j] : 0.0f;
    *out = (dlrm_linear_t){.K = K, .N = N, .panels = dst, .bias = bias};
}

/* What a tile computes: its rows of x (leading dimension ldx; `rows` of them stored) times up
 * to `np` panels (panel j at wp + j K 16; `cols` outputs stored). */
typedef struct {
    int K;
    const float *x, *wp, *bias;
    size_t ldx;
    float *y;
    size_t ldy;
    int rows, cols, np, relu;
} tile_t;

typedef void (*tile_fn)(const tile_t *t);

/* Stores the first `rows` rows, `cols` columns, of a tile's results (row stride ld). */
static inline __attribute__((always_inline)) void store_tile(const tile_t *t, const float *done,
                                                             size_t ld)
{
    for (int i = 0; i < t->rows; i++)
        memcpy(t->y + (size_t)i * t->ldy, done + (size_t)i * ld, sizeof(float) * (size_t)t->cols);
}

/* ---- generic: fmaf in C, any CPU; 4 rows x 16 outputs ---- */

static void tile_generic(const tile_t *t)
{
    float acc[4][PANEL];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < PANEL; j++)
            acc[i][j] = t->bias[j];
    for (int k = 0; k < t->K; k++) {
        const float *w = t->wp + (size_t)k * PANEL;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < PANEL; j++)
                acc[i][j] = fmaf(t->x[(size_t)i * t->ldx + k], w[j], acc[i][j]);
    }
    if (t->relu)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < PANEL; j++)
                acc[i][j] = acc[i][j] > 0.0f ? acc[i][j] : 0.0f;
    store_tile(t, &acc[0][0], PANEL);
}

#ifdef DLRM_X86

/*
 * The vector tiles name every sum: ROWSn(X) applies X to row numbers 0 .. n-1.  (GCC keeps an
 * array of vector sums in registers too, but also stores it to memory on every k, which halved
 * the kernels' rate.)  Each tile comes in several heights, so that a batch's last rows are
 * not computed as a whole tile: 256 rows are 21 tiles of 12 and one of 4.  A full tile is
 * stored straight from the registers; a partial one goes through `done`, which the epilogue
 * indexes by row.  The ReLU is max(s, 0), which gives +0 for NaN and -0 as the generic
 * kernel's s > 0 ? s : 0 does.
 */
#define ROWS2(X) X(0) X(1)
#define ROWS4(X) ROWS2(X) X(2) X(3)
#define ROWS6(X) ROWS4(X) X(4) X(5)
#define ROWS8(X) ROWS6(X) X(6) X(7)
#define ROWS12(X) ROWS8(X) X(8) X(9) X(10) X(11)

/* AVX2 + FMA: up to 6 rows x 16 outputs, two 8-lane sums a row (12 of 16 registers). */
#define A2_INIT(i) __m256 s##i##a = b0, s##i##b = b1;
#define A2_FMA(i)                                                                                  \
    {                                                                                              \
        __m256 x = _mm256_broadcast_ss(a + i * ldx);                                               \
        s##i##a = _mm256_fmadd_ps(x, w0, s##i##a);                                                 \
        s##i##b = _mm256_fmadd_ps(x, w1, s##i##b);                                                 \
    }
#define A2_OUT(i, dst)                                                                             \
    _mm256_storeu_ps(dst, t->relu ? _mm256_max_ps(s##i##a, zero) : s##i##a);                       \
    _mm256_storeu_ps(dst + 8, t->relu ? _mm256_max_ps(s##i##b, zero) : s##i##b);
#define A2_STORE(i) A2_OUT(i, t->y + i * t->ldy)
#define A2_DONE(i) A2_OUT(i, done[i])
#define AVX2_TILE(name, ROWS, MR)                                                                  \
    __attribute__((target("avx2,fma"))) static void name(const tile_t *t)                          \
    {                                                                                              \
        const __m256 b0 = _mm256_loadu_ps(t->bias), b1 = _mm256_loadu_ps(t->bias + 8);             \
        ROWS(A2_INIT)                                                                              \
        const float *w = t->wp, *a = t->x;                                                         \
        const size_t ldx = t->ldx;                                                                 \
        for (int k = 0; k < t->K; k++, w += PANEL, a++) {                                          \
            const __m256 w0 = _mm256_load_ps(w), w1 = _mm256_load_ps(w + 8);                       \
            ROWS(A2_FMA)                                                                           \
        }                                                                                          \
        const __m256 zero = _mm256_setzero_ps();                                                   \
        if (t->rows == MR && t->cols == PANEL) {                                                   \
            ROWS(A2_STORE)                                                                         \
        } else {                                                                                   \
            float done[MR][PANEL];                                                                 \
            ROWS(A2_DONE)                                                                          \
            store_tile(t, &done[0][0], PANEL);                                                     \
        }                                                                                          \
    }
AVX2_TILE(tile_avx2_6, ROWS6, 6)
AVX2_TILE(tile_avx2_4, ROWS4, 4)
AVX2_TILE(tile_avx2_2, ROWS2, 2)

/* AVX-512: up to 12 rows x 2 panels (32 outputs), one 16-lane sum per row and panel (24 of 32
 * registers); the last of an odd number of panels alone. */
#define A5_OUT(dst, v) _mm512_storeu_ps(dst, t->relu ? _mm512_max_ps(v, zero) : v);
#define A5_DONE(i, j, v) A5_OUT(done[i] + PANEL * j, v)
#define A5_STORE(i, j, v) A5_OUT(t->y + i * t->ldy + PANEL * j, v)
#define A5_INIT2(i) __m512 s##i##a = b0, s##i##b = b1;
#define A5_FMA2(i)                                                                                 \
    {                                                                                              \
        __m512 x = _mm512_set1_ps(a[i * ldx]);                                                     \
        s##i##a = _mm512_fmadd_ps(x, w0, s##i##a);                                                 \
        s##i##b = _mm512_fmadd_ps(x, w1, s##i##b);                                                 \
    }
#define A5_DONE2(i) A5_DONE(i, 0, s##i##a) A5_DONE(i, 1, s##i##b)
#define A5_STORE2(i) A5_STORE(i, 0, s##i##a) A5_STORE(i, 1, s##i##b)
#define A5_INIT1(i) __m512 s##i = b0;
#define A5_FMA1(i) s##i = _mm512_fmadd_ps(_mm512_set1_ps(a[i * ldx]), w0, s##i);
#define A5_DONE1(i) A5_DONE(i, 0, s##i)
#define A5_STORE1(i) A5_STORE(i, 0, s##i)
#define AVX512_TILE(name, ROWS, MR, NP)                                                            \
    __attribute__((target("avx512f"))) static void name(const tile_t *t)                           \
    {                                                                                              \
        const size_t ps = (size_t)t->K * PANEL, ldx = t->ldx;                                      \
        const __m512 b0 = _mm512_loadu_ps(t->bias);                                                \
        const __m512 b1 = NP == 2 ? _mm512_loadu_ps(t->bias + PANEL) : b0;                         \
        (void)b1;                                                                                  \
        (void)ps;                                                                                  \
        ROWS(A5_INIT##NP)                                                                          \
        const float *w = t->wp, *a = t->x;                                                         \
        for (int k = 0; k < t->K; k++, w += PANEL, a++) {                                          \
            const __m512 w0 = _mm512_load_ps(w);                                                   \
            const __m512 w1 = NP == 2 ? _mm512_load_ps(w + ps) : w0;                               \
            (void)w1;                                                                              \
            ROWS(A5_FMA##NP)                                                                       \
        }                                                                                          \
        const __m512 zero = _mm512_setzero_ps();                                                   \
        if (t->rows == MR && t->cols == NP * PANEL) {                                              \
            ROWS(A5_STORE##NP)                                                                     \
        } else {                                                                                   \
            float done[MR][2 * PANEL];                                                             \
            ROWS(A5_DONE##NP)                                                                      \
            store_tile(t, &done[0][0], 2 * PANEL);                                                 \
        }                                                                                          \
    }
AVX512_TILE(tile_avx512_12x2, ROWS12, 12, 2)
AVX512_TILE(tile_avx512_8x2, ROWS8, 8, 2)
AVX512_TILE(tile_avx512_4x2, ROWS4, 4, 2)
AVX512_TILE(tile_avx512_12x1, ROWS12, 12, 1)
AVX512_TILE(tile_avx512_8x1, ROWS8, 8, 1)
AVX512_TILE(tile_avx512_4x1, ROWS4, 4, 1)

static int have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

static int have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

static int have_generic(void)
{
    return 1;
}

#define HEIGHTS 3
typedef struct {
    const char *name;
    int (*supported)(void);
    int np;                   /* panels a tile covers */
    int mr[HEIGHTS];          /* tile heights, tallest first (0: none) */
    tile_fn tile[HEIGHTS][2]; /* [height][panels - 1] */
} kernel_t;

/* Fastest first. */
static const kernel_t kernels[] = {
#ifdef DLRM_X86
    {"avx512",
     have_avx512,
     2,
     {12, 8, 4},
     {{tile_avx512_12x1, tile_avx512_12x2},
      {tile_avx512_8x1, tile_avx512_8x2},
      {tile_avx512_4x1, tile_avx512_4x2}}},
    {"avx2", have_avx2, 1, {6, 4, 2}, {{tile_avx2_6}, {tile_avx2_4}, {tile_avx2_2}}},
#endif
    {"generic", have_generic, 1, {4}, {{tile_generic}}},
};
#define N_KERNELS (int)(sizeof(kernels) / sizeof(kernels[0]))

static const kernel_t *active; /* set by dlrm_set_kernel or, at first use, from DLRM_KERNEL */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static dlrm_status_t env_status = DLRM_OK;
static char env_error[256];

/* The names of the kernels this CPU runs, for messages. */
static void list_supported(char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < N_KERNELS; i++)
        if (kernels[i].supported()) {
            size_t used = strlen(buf);
            snprintf(buf + used, len - used, "%s%s", used ? ", " : "", kernels[i].name);
        }
}

static dlrm_status_t choose(const char *name, const char *who)
{
    const kernel_t *best = NULL;
    for (int i = 0; i < N_KERNELS; i++) {
        if (!kernels[i].supported())
            continue;
        if (!best)
            best = &kernels[i];
        if (name && *name && strcmp(name, kernels[i].name) == 0) {
            __atomic_store_n(&active, &kernels[i], __ATOMIC_RELEASE);
            return DLRM_OK;
        }
    }
    if (!name || !*name) {
        __atomic_store_n(&active, best, __ATOMIC_RELEASE);
        return DLRM_OK;
    }
    char have[64];
    list_supported(have, sizeof(have));
    int known = 0;
    for (int i = 0; i < N_KERNELS; i++)
        known |= strcmp(name, kernels[i].name) == 0;
    return dlrm_error(DLRM_ERR_ARG, "%s '%s': %s (this CPU runs: %s)", who, name,
                      known ? "this CPU cannot run that kernel" : "no such kernel", have);
}

static void choose_from_env(void)
{
    if (__atomic_load_n(&active, __ATOMIC_ACQUIRE))
        return; /* dlrm_set_kernel came first */
    env_status = choose(getenv("DLRM_KERNEL"), "DLRM_KERNEL");
    if (env_status != DLRM_OK) {
        snprintf(env_error, sizeof(env_error), "%s", dlrm_last_error());
        choose(NULL, "");
    }
}

dlrm_status_t dlrm_kernel_check(void)
{
    pthread_once(&env_once, choose_from_env);
    return env_status == DLRM_OK ? DLRM_OK : dlrm_error(env_status, "%s", env_error);
}

dlrm_status_t dlrm_set_kernel(const char *name)
{
    pthread_once(&env_once, choose_from_env);
    dlrm_status_t st = choose(name, "kernel");
    if (st == DLRM_OK)
        env_status = DLRM_OK; /* an explicit choice overrides a bad DLRM_KERNEL */
    return st;
}

const char *dlrm_kernel(void)
{
    pthread_once(&env_once, choose_from_env);
    return __atomic_load_n(&active, __ATOMIC_ACQUIRE)->name;
}

int dlrm_kernels(const char **names, int max)
{
    int n = 0;
    for (int i = 0; i < N_KERNELS; i++)
        if (kernels[i].supported() && n < max)
            names[n++] = kernels[i].name;
    return n;
}

size_t dlrm_linear_ws_floats(int K)
{
    return (size_t)MAX_MR * (size_t)(K > 0 ? K : 1);
}

void dlrm_linear_run(const dlrm_linear_t *L, int M, const float *x, size_t ldx, float *y,
                     size_t ldy, int relu, float *ws)
{
    pthread_once(&env_once, choose_from_env);
    const kernel_t *kn = __atomic_load_n(&active, __ATOMIC_ACQUIRE);
    const int K = L->K, N = L->N, panels = (N + PANEL - 1) / PANEL;
    for (int m0 = 0; m0 < M;) {
        /* The tallest tile that fits the rows left, else the shortest, on a zero-padded copy
         * of those rows (rows past M are computed and never stored). */
        int left = M - m0, h = 0;
        while (h + 1 < HEIGHTS && kn->mr[h + 1] && kn->mr[h] > left)
            h++;
        int mr = kn->mr[h], rows = left < mr ? left : mr;
        const float *xt = x + (size_t)m0 * ldx;
        size_t ldt = ldx;
        if (rows < mr) {
            memset(ws, 0, sizeof(float) * (size_t)mr * K);
            for (int i = 0; i < rows; i++)
                memcpy(ws + (size_t)i * K, xt + (size_t)i * ldx, sizeof(float) * (size_t)K);
            xt = ws;
            ldt = (size_t)K;
        }
        for (int p = 0; p < panels; p += kn->np) {
            int np = panels - p < kn->np ? panels - p : kn->np;
            int cols = N - p * PANEL < np * PANEL ? N - p * PANEL : np * PANEL;
            tile_t t = {.K = K,
                        .x = xt,
                        .wp = L->panels + (size_t)p * K * PANEL,
                        .bias = L->bias + (size_t)p * PANEL,
                        .ldx = ldt,
                        .y = y + (size_t)m0 * ldy + (size_t)p * PANEL,
                        .ldy = ldy,
                        .rows = rows,
                        .cols = cols,
                        .np = np,
                        .relu = relu};
            kn->tile[h][np - 1](&t);
        }
        m0 += rows;
    }
}
