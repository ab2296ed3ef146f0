/*
 * dlrm.h: a DLRM inference engine that computes what the reference PyTorch DLRM (DLRM_Net in
 * dlrm_s_pytorch.py) computes for the same weights and inputs.
 *
 * Model, in the reference's terms (see the project's docs, "dlrm-model"):
 *   bottom MLP  --arch-mlp-bot m_den-h1-...-d   Linear + ReLU on every layer
 *   embeddings  --arch-embedding-size n1-...-nT  table t is [n_t, d]; bags pooled by (weighted) sum
 *   interaction --arch-interaction-op dot|cat   dot: x_bot followed by the lower triangle of
 *               T T^T (i outer, j < i; j <= i with --arch-interaction-itself), T = [x_bot, e_1..]
 *   top MLP     --arch-mlp-top h1-...-1          Linear + ReLU, the last Linear + sigmoid; its
 *               input width is derived from the interaction
 * Weights are float32, Linear weight [out, in] row-major, as in the reference's state_dict.
 *
 * Ownership: a model owns (or maps) its weights until dlrm_model_free.  Every function returns a
 * status; dlrm_last_error() describes the last failure of the calling thread with its context
 * (which layer, which tensor, which value).  Nothing here calls exit().
 */
#ifndef DLRM_H
#define DLRM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what this header declares is what it exports. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef enum {
    DLRM_OK = 0,
    DLRM_ERR_ARG,    /* invalid argument or configuration (the message names it) */
    DLRM_ERR_NOMEM,  /* allocation failed */
    DLRM_ERR_IO,     /* a file could not be opened, read or written */
    DLRM_ERR_FORMAT, /* a weights file is malformed: header, dtype, shape, size, missing tensor */
    DLRM_ERR_RANGE,  /* an embedding index outside its table */
} dlrm_status_t;

typedef enum { DLRM_INTERACT_DOT = 0, DLRM_INTERACT_CAT = 1 } dlrm_interaction_t;

#define DLRM_MAX_LAYERS 32

typedef struct {
    int n_bot;                    /* number of bottom widths, input included (>= 2) */
    int bot[DLRM_MAX_LAYERS];     /* bottom widths: m_den, h1, ..., d */
    int n_top;                    /* number of top output widths (>= 1) */
    int top[DLRM_MAX_LAYERS + 1]; /* top widths: [0] = derived input width, then h1, ..., 1 */
    int n_tables;
    int64_t *rows;                /* [n_tables] rows per table (owned) */
    int d;                        /* embedding dimension (--arch-sparse-feature-size) */
    dlrm_interaction_t op;
    int itself;                   /* --arch-interaction-itself */
} dlrm_config_t;

/*
 * Builds a configuration from the reference's option strings, e.g. ("13-512-256-64-16",
 * "512-256-1", "1000-2000-50", 16, "dot", 0).  Checks: every width >= 1, bottom output == d,
 * top output == 1, rows >= 1.  The top MLP's input width is derived and stored in top[0].
 */
dlrm_status_t dlrm_config_parse(const char *arch_mlp_bot, const char *arch_mlp_top,
                                const char *arch_embedding_size, int d, const char *op,
                                int itself, dlrm_config_t *cfg);
void dlrm_config_free(dlrm_config_t *cfg);

/* Width of the interaction's output R (= the top MLP's input). */
int dlrm_interaction_width(const dlrm_config_t *cfg);

typedef struct dlrm_model dlrm_model_t;

/*
 * Weights drawn with the reference's distributions from a counter-based generator: table rows
 * U(-sqrt(1/n), sqrt(1/n)), Linear weight N(0, sqrt(2/(in+out))), bias N(0, sqrt(1/out)).
 * Every value is a function of (seed, tensor, index) only, so a process can build just the
 * tables it owns, tables[0 .. n_tables-1] (any order, each once; the others stay absent), and
 * get the same numbers as a process that builds all of them.  tables NULL: every table.
 */
dlrm_status_t dlrm_model_init_random(const dlrm_config_t *cfg, uint64_t seed, const int *tables,
                                     int n_tables, dlrm_model_t **model_p);

/*
 * Loads a safetensors file (https://huggingface.co/docs/safetensors: 8-byte little-endian header
 * length, UTF-8 JSON header, raw data) whose tensors carry the reference's state_dict names
 * (emb_l.{t}.weight, bot_l.{2i}.weight/.bias, top_l.{2i}.weight/.bias).  The header is checked
 * whole (offsets whole numbers inside the data, no tensor twice, none overlapping); the tensors
 * the model needs are read into its own memory (tables on 2 MiB pages where the kernel allows),
 * so the file may change or go once this returns.  Every tensor the configuration needs must
 * be there, F32, with its shape; errors name the tensor.  A file that is not a regular file is
 * DLRM_ERR_FORMAT.  tables/n_tables as above: only those tables are read.
 */
dlrm_status_t dlrm_model_load(const dlrm_config_t *cfg, const char *path, const int *tables,
                              int n_tables, dlrm_model_t **model_p);

/* How a model holds its tables. */
typedef enum {
    DLRM_HOLD_AUTO = 0, /* loading: COPY when the tables fit in half of MemAvailable, else MAP */
    DLRM_HOLD_COPY,     /* the model's own memory, on 2 MiB pages where the kernel allows (random
                           tables always; the fast lookups) */
    DLRM_HOLD_MAP       /* the file mapped read-only: no copy, the page cache shared by the
                           processes of a host, pages the kernel may drop and read again under
                           memory pressure; lookups on 4 KiB pages are slower, and the file must
                           not change or shrink while the model lives (a cut file is SIGBUS) */
} dlrm_hold_t;

/*
 * dlrm_model_load with a choice of how the tables are held (the MLPs are always copied).
 * DLRM_HOLD_MAP needs every table the process holds at a 4-byte-aligned offset in the file
 * (dlrm_model_save and the usual writers align to 8); DLRM_ERR_FORMAT names the one that is not.
 * DLRM_HOLD_AUTO maps only when memory is short and every table can be mapped.
 */
dlrm_status_t dlrm_model_load_held(const dlrm_config_t *cfg, const char *path, const int *tables,
                                   int n_tables, dlrm_hold_t hold, dlrm_model_t **model_p);

/* DLRM_HOLD_COPY or DLRM_HOLD_MAP: how this model holds its tables. */
dlrm_hold_t dlrm_model_hold(const dlrm_model_t *model);

/* Writes all of the model's tensors as a safetensors file (tests and generated models). */
dlrm_status_t dlrm_model_save(const dlrm_model_t *model, const char *path);

/*
 * The memory holding the model's weights on this process: *bytes in all (mapped tables
 * included), *huge_bytes of it on 2 MiB (transparent huge) pages, as /proc/self/smaps says (0
 * where it cannot be read).
 */
dlrm_status_t dlrm_model_memory(const dlrm_model_t *model, size_t *bytes, size_t *huge_bytes);

void dlrm_model_free(dlrm_model_t *model);

const dlrm_config_t *dlrm_model_config(const dlrm_model_t *model);
/* Row-major [rows, d] table t, or NULL when this process did not build it. */
const float *dlrm_model_table(const dlrm_model_t *model, int t);

/*
 * A batch of B samples.  dense: [B, m_den].  Sparse inputs per table t, in the EmbeddingBag
 * offsets form: bag b of table t holds indices[t][offsets[t][b] .. offsets[t][b+1]) (offsets has
 * B+1 entries), with optional per-index weights[t] (NULL: weight 1).  An empty bag pools to 0.
 */
typedef struct {
    int B;
    const float *dense;
    const int64_t *const *indices;
    const int64_t *const *offsets;
    const float *const *weights; /* NULL, or per table NULL or weights */
} dlrm_batch_t;

/* Bottom MLP: out [B, d]. */
dlrm_status_t dlrm_bottom(const dlrm_model_t *m, int B, const float *dense, float *out);

/*
 * Pools the n tables tables[0 .. n-1] (NULL: every table, in order) for all B samples: out is
 * [B, n, d], sample-major in the list's order (the layout the model-parallel exchange sends).
 * Indices are checked against the table's rows: DLRM_ERR_RANGE names table, sample and value,
 * and nothing is read out of bounds.
 */
dlrm_status_t dlrm_embed(const dlrm_model_t *m, const dlrm_batch_t *batch, const int *tables,
                         int n, float *out);

/*
 * Interaction and top MLP for B samples: x_bot [B, d] and pooled [B, n_tables, d] give the click
 * probability out[B].
 */
dlrm_status_t dlrm_interact_top(const dlrm_model_t *m, int B, const float *x_bot,
                                const float *pooled, float *out);

/* The whole forward pass on one process: out[B] probabilities. */
dlrm_status_t dlrm_forward(const dlrm_model_t *m, const dlrm_batch_t *batch, float *out);

/*
 * Exactness.  A sample's prediction depends on its own inputs and the model alone: not on the
 * batch size, its position in the batch, the thread count, the kernel or the CPU.  Every
 * output of a Linear layer is one chain of fused multiply-adds in input order starting from the
 * bias (IEEE fmaf, rounded once per term); every other sum has an order fixed by the model.  So
 * the bits are the same on every machine: the vector kernels run exactly those chains.
 */

/*
 * Threads the batch functions above use (process-wide; default 1): each batch is cut into
 * chunks of samples shared out among n OpenMP threads.  Results are bit for bit the same for
 * any n.  Returns the count now in effect: 1 when the engine was built without OpenMP; n < 1
 * counts as 1.  Set it between batches, not during one.
 */
int dlrm_set_threads(int n);

/*
 * The kernel the Linear layers run on (process-wide): "avx512", "avx2" (with FMA) or "generic"
 * (C's fmaf: any CPU; slow on one without FMA, where libm emulates it).  All give the same
 * bits; they differ in speed.  By default the fastest this CPU runs, or the environment's
 * DLRM_KERNEL; a DLRM_KERNEL this CPU cannot run makes model creation fail with DLRM_ERR_ARG
 * naming it.  dlrm_set_kernel(NULL) picks the fastest; a name the CPU cannot run is
 * DLRM_ERR_ARG and leaves the choice as it was.  Set it between batches, not during one.
 */
dlrm_status_t dlrm_set_kernel(const char *name);
const char *dlrm_kernel(void);
/* The kernels this CPU runs, fastest first: up to max names into names; returns the count. */
int dlrm_kernels(const char **names, int max);

/*
 * Criteo Kaggle train.txt, streamed: label, 13 integer and 26 categorical (hex) features per
 * line, tab-separated, any field empty.  Dense: negative -> 0, then log(x + 1) in float32, as
 * the reference.  Categorical hex value v of feature t -> row v mod rows[t]; empty -> row 0.
 * The model must take 13 dense inputs and have 26 tables.  A malformed line (field count,
 * non-integer dense, non-hex categorical, label not 0/1, longer than DLRM_CRITEO_MAX_LINE) is
 * DLRM_ERR_FORMAT "file:line: what (field)" when strict, else skipped and counted.
 */
#define DLRM_CRITEO_MAX_LINE 65536
typedef struct dlrm_criteo dlrm_criteo_t;
typedef struct {
    float *labels;     /* [max] */
    float *dense;      /* [max, 13] */
    int64_t **indices; /* [26][max]: one index per bag */
} dlrm_samples_t;
dlrm_status_t dlrm_criteo_open(const char *path, const dlrm_config_t *cfg, int strict,
                               dlrm_criteo_t **reader_p);
/* Reads up to max samples into out; *n_p < max only at the end of the file. */
dlrm_status_t dlrm_criteo_read(dlrm_criteo_t *reader, int max, dlrm_samples_t *out, int *n_p);
int64_t dlrm_criteo_lines(const dlrm_criteo_t *reader);   /* lines read so far */
int64_t dlrm_criteo_skipped(const dlrm_criteo_t *reader); /* malformed lines skipped */
const char *dlrm_criteo_last_skip(const dlrm_criteo_t *reader); /* "file:line: why" */
void dlrm_criteo_close(dlrm_criteo_t *reader);

/*
 * Seeded synthetic samples: every value is a function of (seed, global sample number, table), so
 * any process can generate any slice of one stream.  zipf_alpha <= 0: uniform indices; > 0: a
 * bounded power law with row 0 hottest.  pooling: indices per bag (0: empty bags); with
 * random_pooling, uniform in 1..pooling.  Labels are Bernoulli(0.25).
 * Hot spots, to make skew (zeroed fields leave them off):
 *  - table_alpha[t] / table_pooling[t] (arrays of n_tables, or NULL): per-table exponent and
 *    pooling, e.g. power-law tables that all live on one process, or heavier bags there.
 *  - bursts: samples come in runs of burst_len (a batch, typically); in each run every table
 *    independently, with probability burst_prob, has burst_factor times its pooling.  The
 *    lookup work of a process then varies from batch to batch, as with real traffic.
 */
typedef struct {
    uint64_t seed;
    double zipf_alpha;
    int pooling;
    int random_pooling;
    const double *table_alpha;
    const int *table_pooling;
    int64_t burst_len;
    double burst_prob;
    int burst_factor;
} dlrm_synth_t;
int64_t dlrm_synth_index(const dlrm_synth_t *s, int64_t rows, int64_t sample, int table, int k);
int dlrm_synth_bag(const dlrm_synth_t *s, int64_t sample, int table);
int dlrm_synth_max_bag(const dlrm_synth_t *s, int table); /* the largest bag table can get */
double dlrm_synth_mean_bag(const dlrm_synth_t *s, int table); /* expected indices per bag */
void dlrm_synth_dense(const dlrm_synth_t *s, int64_t sample, int m_den, float *out);
int64_t dlrm_synth_count(const dlrm_synth_t *s, int64_t sample, int j); /* dense = log(1+count) */
/* Writes samples 0..samples-1 as Criteo lines (pooling 1, a 13-dense 26-table model): reading
 * the file back gives exactly the synthetic inputs. */
dlrm_status_t dlrm_synth_write_criteo(const dlrm_synth_t *s, const dlrm_config_t *cfg,
                                      int64_t samples, const char *path);
float dlrm_synth_label(const dlrm_synth_t *s, int64_t sample);

/* Quality of click predictions against 0/1 labels. */
typedef struct {
    int64_t n;
    double accuracy; /* predictions rounded at 0.5, as the reference prints */
    double auc;      /* ROC AUC, ties counted half (sklearn's roc_auc_score) */
    double logloss;  /* mean binary cross-entropy, predictions clipped to [1e-15, 1 - 1e-15] */
} dlrm_metrics_t;
/* DLRM_ERR_ARG when n < 1, a prediction is NaN or infinite, a label is not 0/1 (m zeroed), or
 * AUC is undefined (one class only: auc = NAN and the rest still filled). */
dlrm_status_t dlrm_metrics(const float *pred, const float *labels, int64_t n, dlrm_metrics_t *m);

const char *dlrm_strerror(dlrm_status_t status);
const char *dlrm_last_error(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* DLRM_H */
