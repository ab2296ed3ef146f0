/* The ideal model of bounded-lag execution (harness.h, bls-semantics). */
#include "harness.h"

double harness_ideal_time(const double *work, int P, int K, int lag, double *scratch)
{
    return harness_ideal_time_comm(work, P, K, lag, 0.0, scratch);
}

double harness_ideal_time_comm(const double *work, int P, int K, int lag, double comm,
                               double *scratch)
{
    double *start = scratch;    /* [P] start of the current iteration per process */
    double *done = scratch + P; /* [K] */
    for (int p = 0; p < P; p++)
        start[p] = 0.0;
    for (int k = 0; k < K; k++) {
        double dk = 0.0;
        for (int p = 0; p < P; p++) {
            double send = start[p] + work[(size_t)p * K + k];
            start[p] = send; /* start(p,k+1) before the lag term */
            if (send > dk)
                dk = send;
        }
        done[k] = dk + comm;
        /* start(p,k+1) = max(send(p,k), done(k-L)) */
        int j = k - lag;
        double gate = j >= 0 ? done[j] : 0.0;
        for (int p = 0; p < P; p++)
            if (gate > start[p])
                start[p] = gate;
    }
    return K > 0 ? done[K - 1] : 0.0;
}

double harness_ideal_open(const double *work, const double *arrival, int P, int K, int lag,
                          double *done, double *scratch)
{
    return harness_ideal_open_comm(work, arrival, P, K, lag, 0.0, done, scratch);
}

double harness_ideal_open_comm(const double *work, const double *arrival, int P, int K, int lag,
                               double comm, double *done, double *scratch)
{
    double *sent = scratch; /* [P] send(p, k-1) */
    for (int p = 0; p < P; p++)
        sent[p] = 0.0;
    for (int k = 0; k < K; k++) {
        double gate = arrival[k]; /* max(arrival(k), done(k-L-1)) */
        int j = k - lag - 1;
        if (j >= 0 && done[j] > gate)
            gate = done[j];
        double dk = 0.0;
        for (int p = 0; p < P; p++) {
            double start = sent[p] > gate ? sent[p] : gate;
            sent[p] = start + work[(size_t)p * K + k];
            if (sent[p] > dk)
                dk = sent[p];
        }
        done[k] = dk + comm;
    }
    return K > 0 ? done[K - 1] : 0.0;
}
