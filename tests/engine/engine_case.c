/*
 * One oracle case for the engine: builds a seeded random model, saves it as safetensors,
 * LOADS IT BACK (so the loader is what computes), draws a batch (multi-hot bags of 0..max-bag
 * indices, so empty bags occur; optional per-index weights), runs dlrm_forward and writes the
 * inputs and predictions for tests/engine/oracle.py, which recomputes them with PyTorch.
 * Before that it checks that a sample's bits depend on nothing but the sample: the stages
 * called apart, every sample alone, the batch reversed, slices at random offsets, 2 and 3
 * engine threads, and every Linear kernel this CPU runs all give the batch's bits.
 *
 * Usage: engine_case --bot 13-64-16 --top 32-1 --emb 100-50-7 --d 16 --op dot|cat [--itself]
 *                    --batch B [--max-bag K] [--weighted] [--seed S] --out DIR
 * Writes DIR/model.safetensors and DIR/case.txt:
 *   line 1: B n_tables m_den
 *   B lines of dense values
 *   per table: offsets (B+1), indices, weights (or "-")
 *   last line: the B predictions
 */
#include "dlrm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state;
static uint64_t next(void)
{
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

static int flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name))
            return 1;
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "engine_case: %s: %s\n", what, dlrm_last_error());
    return 1;
}

/* Frees T tables' index, offset and weight arrays and the arrays holding them. */
static void free_bags(int T, int64_t **idx, int64_t **off, float **wts)
{
    for (int t = 0; t < T; t++) {
        free(idx[t]);
        free(off[t]);
        free(wts[t]);
    }
    free(idx);
    free(off);
    free(wts);
}

/* The batch reversed (sample b at position B-1-b) and slices at random offsets and of random
 * lengths: every sample keeps its bits. */
static int check_positions(const dlrm_model_t *model, const dlrm_batch_t *batch, const float *pred,
                           int B, int T, int m_den)
{
    float *dense = malloc(sizeof(float) * ((size_t)B * m_den + 1)),
          *out = malloc(sizeof(float) * (size_t)(B + 1));
    int64_t **idx = calloc((size_t)T, sizeof(*idx)), **off = calloc((size_t)T, sizeof(*off));
    float **wts = calloc((size_t)T, sizeof(*wts));
    for (int b = 0; b < B; b++)
        memcpy(dense + (size_t)(B - 1 - b) * m_den, batch->dense + (size_t)b * m_den,
               sizeof(float) * (size_t)m_den);
    for (int t = 0; t < T; t++) {
        const int64_t *o = batch->offsets[t];
        size_t n = (size_t)(o[B] - o[0]) + 1;
        idx[t] = malloc(sizeof(int64_t) * n);
        off[t] = malloc(sizeof(int64_t) * (size_t)(B + 1));
        wts[t] = malloc(sizeof(float) * n);
        int64_t at = 0;
        for (int r = 0; r < B; r++) { /* position r holds sample B-1-r */
            int b = B - 1 - r;
            off[t][r] = at;
            for (int64_t k = o[b]; k < o[b + 1]; k++, at++) {
                idx[t][at] = batch->indices[t][k];
                wts[t][at] = batch->weights ? batch->weights[t][k] : 1.0f;
            }
        }
        off[t][B] = at;
    }
    dlrm_batch_t rev = {B, dense, (const int64_t *const *)idx, (const int64_t *const *)off,
                        batch->weights ? (const float *const *)wts : NULL};
    int bad = 0;
    if (dlrm_forward(model, &rev, out) != DLRM_OK)
        bad = fail("forward of the reversed batch");
    for (int b = 0; !bad && b < B; b++)
        if (memcmp(&out[B - 1 - b], &pred[b], sizeof(float)) != 0) {
            fprintf(stderr,
                    "engine_case: sample %d at position %d of the reversed batch: %a, in "
                    "order: %a\n",
                    b, B - 1 - b, out[B - 1 - b], pred[b]);
            bad = 1;
        }
    const int64_t **ib = malloc(sizeof(*ib) * (size_t)T);
    for (int s = 0; !bad && s < 8; s++) {
        int a = (int)(next() % (uint64_t)B), len = 1 + (int)(next() % (uint64_t)(B - a));
        for (int t = 0; t < T; t++)
            ib[t] = batch->offsets[t] + a; /* offsets stay absolute */
        dlrm_batch_t slice = {len, batch->dense + (size_t)a * m_den, batch->indices, ib,
                              batch->weights};
        if (dlrm_forward(model, &slice, out) != DLRM_OK)
            bad = fail("forward of a slice");
        else if (memcmp(out, pred + a, sizeof(float) * (size_t)len) != 0) {
            fprintf(stderr, "engine_case: samples %d..%d as a batch of their own differ\n", a,
                    a + len - 1);
            bad = 1;
        }
    }
    free(ib);
    free_bags(T, idx, off, wts);
    free(dense);
    free(out);
    return bad;
}

/* Every Linear kernel this CPU runs gives the default kernel's bits.  The generic one (fmaf
 * through libm) is slow: it computes the first 256 samples. */
static int check_kernels(const dlrm_model_t *model, const dlrm_batch_t *batch, const float *pred)
{
    static const char *names[] = {"avx512", "avx2", "generic"};
    const char *chosen = dlrm_kernel();
    float *out = malloc(sizeof(float) * (size_t)(batch->B + 1));
    int bad = 0, ran = 0;
    for (int i = 0; i < 3 && !bad; i++) {
        if (dlrm_set_kernel(names[i]) != DLRM_OK)
            continue; /* not on this CPU */
        dlrm_batch_t part = *batch;
        if (!strcmp(names[i], "generic") && part.B > 256)
            part.B = 256;
        if (dlrm_forward(model, &part, out) != DLRM_OK)
            bad = fail("forward with another kernel");
        else if (memcmp(out, pred, sizeof(float) * (size_t)part.B) != 0) {
            fprintf(stderr, "engine_case: kernel %s differs from kernel %s\n", names[i], chosen);
            bad = 1;
        }
        ran++;
    }
    if (dlrm_set_kernel(chosen) != DLRM_OK)
        bad = fail("restoring the kernel");
    if (!bad)
        printf("engine_case: %d kernels give the same bits\n", ran);
    free(out);
    return bad;
}

/* A seeded batch: dense values like log(1+x) of small counts; per table multi-hot bags of
 * 0..max_bag indices (so empty bags occur), optional per-index weights. */
typedef struct {
    int B, T, m_den;
    float *dense;
    int64_t **idx, **off;
    float **wts; /* per table NULL unless weighted */
    dlrm_batch_t batch;
} case_batch_t;

static void make_batch(const dlrm_config_t *cfg, int B, int max_bag, int weighted, case_batch_t *c)
{
    int T = cfg->n_tables, m_den = cfg->bot[0];
    *c = (case_batch_t){B,
                        T,
                        m_den,
                        malloc(sizeof(float) * (size_t)B * m_den + 1),
                        calloc((size_t)T, sizeof(int64_t *)),
                        calloc((size_t)T, sizeof(int64_t *)),
                        calloc((size_t)T, sizeof(float *)),
                        {0}};
    for (size_t i = 0; i < (size_t)B * m_den; i++)
        c->dense[i] = (float)((next() >> 40) % 1000) / 250.0f;
    for (int t = 0; t < T; t++) {
        c->off[t] = malloc(sizeof(int64_t) * (size_t)(B + 1));
        c->idx[t] = malloc(sizeof(int64_t) * ((size_t)B * (size_t)max_bag + 1));
        c->wts[t] = weighted ? malloc(sizeof(float) * ((size_t)B * (size_t)max_bag + 1)) : NULL;
        int64_t n = 0;
        for (int b = 0; b < B; b++) {
            c->off[t][b] = n;
            int bag = max_bag > 0 ? (int)(next() % (uint64_t)(max_bag + 1)) : 0;
            for (int k = 0; k < bag; k++, n++) {
                c->idx[t][n] = (int64_t)(next() % (uint64_t)cfg->rows[t]);
                if (c->wts[t])
                    c->wts[t][n] = (float)((next() >> 40) % 2000) / 1000.0f - 0.5f;
            }
        }
        c->off[t][B] = n;
    }
    c->batch =
        (dlrm_batch_t){B, c->dense, (const int64_t *const *)c->idx, (const int64_t *const *)c->off,
                       weighted ? (const float *const *)c->wts : NULL};
}

/* The three stages called apart, as the distributed drivers call them, into out. */
static int stages_apart(const dlrm_model_t *model, const case_batch_t *c, int d, float *out)
{
    float *x_bot = malloc(sizeof(float) * ((size_t)c->B * (size_t)d + 1));
    float *pooled = malloc(sizeof(float) * ((size_t)c->B * (size_t)c->T * (size_t)d + 1));
    int rc = dlrm_bottom(model, c->B, c->dense, x_bot) != DLRM_OK ||
             dlrm_embed(model, &c->batch, NULL, c->T, pooled) != DLRM_OK ||
             dlrm_interact_top(model, c->B, x_bot, pooled, out) != DLRM_OK;
    free(x_bot);
    free(pooled);
    return rc ? fail("bottom, embed and interact_top") : 0;
}

/* A sample's bits whatever the split: the stages apart, every sample alone, the batch reversed
 * and sliced, every kernel, and 2 or 3 engine threads. */
static int check_bits(const dlrm_model_t *model, const case_batch_t *c, int d, const float *pred)
{
    size_t bytes = sizeof(float) * (size_t)c->B;
    float *again = malloc(bytes + sizeof(float));
    const int64_t **ob = malloc(sizeof(*ob) * (size_t)c->T);
    int bad = stages_apart(model, c, d, again);
    if (!bad && memcmp(pred, again, bytes) != 0)
        bad = fprintf(stderr, "engine_case: dlrm_bottom + dlrm_embed + dlrm_interact_top differ "
                              "from dlrm_forward\n") > 0;
    for (int b = 0; b < c->B && !bad; b++) {
        for (int t = 0; t < c->T; t++)
            ob[t] = c->off[t] + b; /* offsets stay absolute */
        dlrm_batch_t one = {1, c->dense + (size_t)b * c->m_den, c->batch.indices, ob,
                            c->batch.weights};
        if (dlrm_forward(model, &one, again + b) != DLRM_OK)
            bad = fail("forward of one sample");
    }
    if (!bad && memcmp(pred, again, bytes) != 0)
        bad = fprintf(stderr, "engine_case: samples computed alone differ from the batch's\n") > 0;
    if (!bad)
        bad = check_positions(model, &c->batch, pred, c->B, c->T, c->m_den) != 0 ||
              check_kernels(model, &c->batch, pred) != 0;
    for (int threads = 2; threads <= 3 && !bad; threads++) {
        if (dlrm_set_threads(threads) != threads) {
            printf("engine_case: built without OpenMP; thread counts not compared\n");
            break;
        }
        if (dlrm_forward(model, &c->batch, again) != DLRM_OK || memcmp(pred, again, bytes) != 0)
            bad = fprintf(stderr, "engine_case: %d engine threads differ from one\n", threads) > 0;
        else if (stages_apart(model, c, d, again) != 0 || memcmp(pred, again, bytes) != 0)
            bad = fprintf(stderr, "engine_case: the stages apart with %d threads differ\n",
                          threads) > 0;
    }
    dlrm_set_threads(1);
    free(again);
    free(ob);
    return bad;
}

/* DIR/case.txt for oracle.py (format at the top of this file). */
static int write_case(const char *out, const case_batch_t *c, const float *pred)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/case.txt", out);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    fprintf(f, "%d %d %d\n", c->B, c->T, c->m_den);
    for (int b = 0; b < c->B; b++)
        for (int j = 0; j < c->m_den; j++)
            fprintf(f, "%.9g%c", c->dense[(size_t)b * c->m_den + j],
                    j + 1 == c->m_den ? '\n' : ' ');
    for (int t = 0; t < c->T; t++) {
        int64_t n = c->off[t][c->B];
        for (int b = 0; b <= c->B; b++)
            fprintf(f, "%lld%c", (long long)c->off[t][b], b == c->B ? '\n' : ' ');
        for (int64_t k = 0; k < n; k++)
            fprintf(f, "%lld ", (long long)c->idx[t][k]);
        fprintf(f, "\n");
        for (int64_t k = 0; c->wts[t] && k < n; k++)
            fprintf(f, "%.9g ", c->wts[t][k]);
        fprintf(f, c->wts[t] ? "\n" : "-\n");
    }
    for (int b = 0; b < c->B; b++)
        fprintf(f, "%.9g%c", pred[b], b + 1 == c->B ? '\n' : ' ');
    return fclose(f) == 0 ? 0 : 1;
}

/* The seeded model, saved and loaded back (so the loader is what computes). */
static dlrm_model_t *make_model(const dlrm_config_t *cfg, uint64_t seed, const char *out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", out);
    dlrm_model_t *gen, *model = NULL;
    if (dlrm_model_init_random(cfg, seed, NULL, 0, &gen) != DLRM_OK)
        return fail("init"), NULL;
    if (dlrm_model_save(gen, path) != DLRM_OK)
        fail("save");
    else if (dlrm_model_load(cfg, path, NULL, 0, &model) != DLRM_OK)
        fail("load");
    dlrm_model_free(gen);
    return model;
}

int main(int argc, char **argv)
{
    const char *out = opt(argc, argv, "--out", NULL);
    if (!out) {
        fprintf(stderr, "engine_case: --out DIR is required\n");
        return 2;
    }
    dlrm_config_t cfg;
    if (dlrm_config_parse(opt(argc, argv, "--bot", "13-64-16"), opt(argc, argv, "--top", "32-1"),
                          opt(argc, argv, "--emb", "100-50-7"), atoi(opt(argc, argv, "--d", "16")),
                          opt(argc, argv, "--op", "dot"), flag(argc, argv, "--itself"),
                          &cfg) != DLRM_OK)
        return fail("configuration");
    uint64_t seed = strtoull(opt(argc, argv, "--seed", "1"), NULL, 10);
    dlrm_model_t *model = make_model(&cfg, seed, out);
    if (!model)
        return 1;
    state = seed * 7919 + 17;
    case_batch_t c;
    make_batch(&cfg, atoi(opt(argc, argv, "--batch", "16")),
               atoi(opt(argc, argv, "--max-bag", "3")), flag(argc, argv, "--weighted"), &c);
    float *pred = malloc(sizeof(float) * (size_t)(c.B + 1));
    int rc = dlrm_forward(model, &c.batch, pred) != DLRM_OK ? fail("forward") : 0;
    if (!rc)
        rc = check_bits(model, &c, cfg.d, pred);
    if (!rc)
        rc = write_case(out, &c, pred);
    free_bags(c.T, c.idx, c.off, c.wts);
    free(c.dense);
    free(pred);
    dlrm_model_free(model);
    dlrm_config_free(&cfg);
    return rc;
}
