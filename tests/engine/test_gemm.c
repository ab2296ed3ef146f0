/*
 * The engine's Linear kernels against their contract (engine/src/dlrm_gemm.c): every output is
 *     s = b[n];  for k = 0 .. K-1: s = fmaf(x[m][k], W[n][k], s);  y[m][n] = relu ? (s > 0 ? s : 0)
 * : s bit for bit, computed here by that plain loop with C's fmaf, for every kernel this CPU runs
 * (avx512, avx2, generic), over shapes that reach every tile height and a partial last panel,
 * with row strides wider than the rows, with NaN, infinities and signed zeros, and with the
 * memory around each output row checked untouched.  Also: the kernel choice and its errors.
 * Usage: test_gemm
 */
#include "dlrm.h"
#include "dlrm_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static uint64_t state = 12345;
static float uniform(void) /* in [-1, 1), with full 24-bit mantissas, so sums round */
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(state >> 40) / (double)(1ULL << 23) - 1.0);
}

static const float SENTINEL = -12345.678f;

/* One shape under the active kernel: 0 if every bit matched, else the count of mismatches. */
static int check_shape(int M, int K, int N, int relu, int specials)
{
    size_t ldx = (size_t)K + 3, ldy = (size_t)N + 5;
    float *x = malloc(sizeof(float) * (size_t)M * ldx), *W = malloc(sizeof(float) * (size_t)N * K);
    float *b = malloc(sizeof(float) * (size_t)N),
          *y = malloc(sizeof(float) * ((size_t)M * ldy + 1));
    float *packed = aligned_alloc(64, sizeof(float) * dlrm_linear_floats(K, N));
    float *ws = malloc(sizeof(float) * dlrm_linear_ws_floats(K));
    for (size_t i = 0; i < (size_t)M * ldx; i++)
        x[i] = uniform();
    for (size_t i = 0; i < (size_t)N * K; i++)
        W[i] = uniform();
    for (int n = 0; n < N; n++)
        b[n] = uniform();
    if (specials) { /* NaN and infinity in a row; a signed zero: -0 + 0 x (-w) = -0 */
        x[0] = NAN;
        if (M > 1)
            x[ldx] = INFINITY;
        if (M > 2 && N > 1) {
            for (int k = 0; k < K; k++) {
                x[2 * ldx + k] = 0.0f;
                W[(size_t)1 * K + k] = -fabsf(W[(size_t)1 * K + k]) - 0.5f;
            }
            b[1] = -0.0f;
        }
    }
    for (size_t i = 0; i < (size_t)M * ldy + 1; i++)
        y[i] = SENTINEL;
    dlrm_linear_t L;
    dlrm_linear_pack(W, b, K, N, packed, &L);
    dlrm_linear_run(&L, M, x, ldx, y, ldy, relu, ws);
    int bad = 0;
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            float s = b[n];
            for (int k = 0; k < K; k++)
                s = fmaf(x[(size_t)m * ldx + k], W[(size_t)n * K + k], s);
            if (relu)
                s = s > 0.0f ? s : 0.0f;
            float got = y[(size_t)m * ldy + n];
            if (memcmp(&got, &s, sizeof(float)) != 0 && bad++ < 3)
                fprintf(stderr,
                        "  %s M=%d K=%d N=%d relu=%d: y[%d][%d] = %a, the fmaf chain gives %a\n",
                        dlrm_kernel(), M, K, N, relu, m, n, got, s);
        }
        for (size_t j = (size_t)N; j < ldy; j++)
            if (y[(size_t)m * ldy + j] != SENTINEL && bad++ < 3)
                fprintf(stderr,
                        "  %s M=%d K=%d N=%d: wrote y[%d][%zu], past the row's %d outputs\n",
                        dlrm_kernel(), M, K, N, m, j, N);
    }
    if (y[(size_t)M * ldy] != SENTINEL && bad++ < 3)
        fprintf(stderr, "  %s M=%d K=%d N=%d: wrote past the last row\n", dlrm_kernel(), M, K, N);
    free(x);
    free(W);
    free(b);
    free(y);
    free(packed);
    free(ws);
    return bad;
}

static void check_kernel(void)
{
    static const int Ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 23, 24, 25, 37, 64};
    static const int Ks[] = {1, 3, 13, 16, 33};
    static const int Ns[] = {1, 2, 8, 15, 16, 17, 31, 32, 33, 48, 50, 64};
    int shapes = 0, bad = 0;
    for (size_t a = 0; a < sizeof(Ms) / sizeof(*Ms); a++)
        for (size_t c = 0; c < sizeof(Ks) / sizeof(*Ks); c++)
            for (size_t d = 0; d < sizeof(Ns) / sizeof(*Ns); d++)
                for (int relu = 0; relu <= 1; relu++, shapes++)
                    bad += check_shape(Ms[a], Ks[c], Ns[d], relu, (int)(a + c + d) % 3 == 0) != 0;
    /* Layers of the reference's Kaggle model, at a chunk's and a process slice's row counts. */
    static const int big[][3] = {{256, 13, 512}, {64, 512, 256}, {37, 367, 512}, {100, 64, 16}};
    for (size_t i = 0; i < sizeof(big) / sizeof(*big); i++, shapes++)
        bad += check_shape(big[i][0], big[i][1], big[i][2], 1, 0) != 0;
    CHECK(bad == 0, "kernel %s: %d of %d shapes differ from the fmaf chain", dlrm_kernel(), bad,
          shapes);
    printf("kernel %s: %d shapes, %d differ from the fmaf chain\n", dlrm_kernel(), shapes, bad);
}

/* The check can fail: a kernel summing in another way (multiply, then add) differs. */
static void check_sensitivity(void)
{
    int M = 8, K = 512, N = 16, differ = 0;
    float *x = malloc(sizeof(float) * (size_t)M * K), *W = malloc(sizeof(float) * (size_t)N * K);
    for (int i = 0; i < M * K; i++)
        x[i] = uniform();
    for (int i = 0; i < N * K; i++)
        W[i] = uniform();
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float fused = 0.0f, apart = 0.0f, reversed = 0.0f;
            for (int k = 0; k < K; k++) {
                fused = fmaf(x[m * K + k], W[n * K + k], fused);
                volatile float p = x[m * K + k] * W[n * K + k];
                apart += p;
                reversed = fmaf(x[m * K + K - 1 - k], W[n * K + K - 1 - k], reversed);
            }
            differ += fused != apart || fused != reversed;
        }
    CHECK(differ > 0, "multiply-then-add and the reversed order never differ from the chain: "
                      "the bitwise comparison could not catch a kernel that sums otherwise");
    free(x);
    free(W);
}

int main(void)
{
    const char *names[] = {"avx512", "avx2", "generic"};
    const char *best = dlrm_kernel();
    int ran = 0;
    check_sensitivity();
    for (int i = 0; i < 3; i++) {
        if (dlrm_set_kernel(names[i]) != DLRM_OK) {
            CHECK(strstr(dlrm_last_error(), "this CPU cannot run that kernel") != NULL,
                  "dlrm_set_kernel(%s): %s", names[i], dlrm_last_error());
            printf("kernel %s: not on this CPU (%s)\n", names[i], dlrm_last_error());
            continue;
        }
        CHECK(strcmp(dlrm_kernel(), names[i]) == 0, "dlrm_kernel() is %s after choosing %s",
              dlrm_kernel(), names[i]);
        if (ran++ == 0)
            CHECK(strcmp(best, names[i]) == 0, "the default kernel is %s, but %s is faster here",
                  best, names[i]);
        check_kernel();
    }
    CHECK(ran >= 1 && strcmp(dlrm_kernel(), "generic") == 0, "the generic kernel did not run");
    /* Errors: an unknown name is refused and leaves the choice as it was. */
    CHECK(dlrm_set_kernel("sse9") == DLRM_ERR_ARG, "dlrm_set_kernel(sse9) was accepted");
    CHECK(strstr(dlrm_last_error(), "'sse9': no such kernel (this CPU runs:") != NULL,
          "message: %s", dlrm_last_error());
    CHECK(strcmp(dlrm_kernel(), "generic") == 0, "a refused name changed the kernel to %s",
          dlrm_kernel());
    CHECK(dlrm_set_kernel(NULL) == DLRM_OK && strcmp(dlrm_kernel(), best) == 0,
          "dlrm_set_kernel(NULL) chose %s, not %s", dlrm_kernel(), best);
    printf("test_gemm: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
