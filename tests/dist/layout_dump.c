/*
 * Prints the C layout (dlrm_dist.h) of P processes, T tables of width d, for batches of
 * 0 .. nmax samples, as JSON: owner[t]; per n, slice_lo[q] and every process's send and
 * receive counts.  tests/torch_bls/test_layout.py holds the PyTorch driver's layout equal to it.
 * Usage: layout_dump P T d nmax
 */
#include "dlrm_dist.h"

#include <stdio.h>
#include <stdlib.h>

static void print_counts(const size_t *c, int P)
{
    for (int i = 0; i < P; i++)
        printf("%s%zu", i ? ", " : "[", c[i]);
    printf("]");
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: layout_dump P T d nmax\n");
        return 2;
    }
    int P = atoi(argv[1]), T = atoi(argv[2]), d = atoi(argv[3]), nmax = atoi(argv[4]);
    dist_layout_t L;
    if (dist_layout_init(&L, P, T, d, DIST_PLACE_CONTIGUOUS, NULL) != DIST_OK) {
        fprintf(stderr, "layout_dump: %s\n", dist_last_error());
        return 2;
    }
    size_t *c = malloc(sizeof(size_t) * (size_t)P), *dsp = malloc(sizeof(size_t) * (size_t)P);
    printf("{\"owner\": [");
    for (int t = 0; t < T; t++)
        printf("%s%d", t ? ", " : "", L.owner[t]);
    printf("], \"batches\": [");
    for (int n = 0; n <= nmax; n++) {
        printf("%s{\"n\": %d, \"slice_lo\": [", n ? ", " : "", n);
        for (int q = 0; q <= P; q++)
            printf("%s%lld", q ? ", " : "", (long long)dist_slice_lo(q, P, n));
        printf("], \"send\": [");
        for (int p = 0; p < P; p++) {
            dist_send_layout(&L, p, n, c, dsp);
            printf("%s", p ? ", " : "");
            print_counts(c, P);
        }
        printf("], \"recv\": [");
        for (int p = 0; p < P; p++) {
            dist_recv_layout(&L, p, n, c, dsp);
            printf("%s", p ? ", " : "");
            print_counts(c, P);
        }
        printf("]}");
    }
    printf("]}\n");
    free(c);
    free(dsp);
    dist_layout_free(&L);
    return 0;
}
