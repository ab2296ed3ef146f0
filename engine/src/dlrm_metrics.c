/*
 * Prediction quality: accuracy at 0.5 (what the reference prints), ROC AUC (the Mann-Whitney
 * statistic with tied predictions counted half, which is what sklearn's roc_auc_score computes),
 * and log loss (mean binary cross-entropy in double, predictions clipped to [1e-15, 1-1e-15]).
 */
#include "dlrm_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float p;
    float y;
} scored_t;

static int by_score(const void *a, const void *b)
{
    float x = ((const scored_t *)a)->p, y = ((const scored_t *)b)->p;
    return (x > y) - (x < y);
}

dlrm_status_t dlrm_metrics(const float *pred, const float *labels, int64_t n, dlrm_metrics_t *m)
{
    if (!pred || !labels || !m || n < 1)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_metrics: need at least one prediction and label");
    *m = (dlrm_metrics_t){.n = 0};
    /* A NaN compares unequal to itself and unordered to everything: it would break the sort's
     * order and the tie loop below, so a non-finite prediction is an error, not a score. */
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(pred[i]))
            return dlrm_error(DLRM_ERR_ARG,
                              "dlrm_metrics: prediction %lld is %s, not a probability (a "
                              "non-finite value in the weights or inputs?)",
                              (long long)i,
                              isnan(pred[i]) ? "NaN" : pred[i] > 0 ? "+inf" : "-inf");
    scored_t *s = malloc(sizeof(scored_t) * (size_t)n);
    if (!s)
        return dlrm_error(DLRM_ERR_NOMEM, "dlrm_metrics: out of memory for %lld samples",
                          (long long)n);
    int64_t correct = 0, pos = 0;
    double loss = 0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] != 0.0f && labels[i] != 1.0f) {
            free(s);
            return dlrm_error(DLRM_ERR_ARG, "dlrm_metrics: label %lld is %g, not 0 or 1",
                              (long long)i, labels[i]);
        }
        int y = labels[i] == 1.0f;
        pos += y;
        correct += (pred[i] >= 0.5f) == y; /* torch.round rounds 0.5 to even (0): see below */
        double p = fmin(fmax((double)pred[i], 1e-15), 1.0 - 1e-15);
        loss -= y ? log(p) : log(1.0 - p);
        s[i] = (scored_t){pred[i], labels[i]};
    }
    /* The reference's accuracy is (round(p) == y): round-half-to-even sends exactly 0.5 to 0. */
    for (int64_t i = 0; i < n; i++)
        if (pred[i] == 0.5f)
            correct += (labels[i] == 0.0f) - (labels[i] == 1.0f);
    m->n = n;
    m->accuracy = (double)correct / (double)n;
    m->logloss = loss / (double)n;
    int64_t neg = n - pos;
    if (pos == 0 || neg == 0) {
        free(s);
        m->auc = NAN;
        return dlrm_error(DLRM_ERR_ARG, "dlrm_metrics: ROC AUC is undefined with only %s labels",
                          pos ? "positive" : "negative");
    }
    qsort(s, (size_t)n, sizeof(scored_t), by_score);
    double rank_sum = 0; /* sum of the positives' average ranks (1-based) */
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && s[j].p == s[i].p)
            j++;
        double avg = 0.5 * (double)(i + 1 + j); /* ranks i+1 .. j */
        for (int64_t k = i; k < j; k++)
            if (s[k].y == 1.0f)
                rank_sum += avg;
        i = j;
    }
    m->auc = (rank_sum - 0.5 * (double)pos * (double)(pos + 1)) / ((double)pos * (double)neg);
    free(s);
    return DLRM_OK;
}
