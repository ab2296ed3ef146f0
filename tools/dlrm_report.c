/* bls-dlrm's report (dlrm_report.h): figures per driver, as a table and as JSON. */
#include "dlrm_report.h"

#include <math.h>
#include <string.h>

static double mib(double bytes)
{
    return bytes / 1048576.0;
}

int dlrm_report_check(const report_t *r, driver_result_t *res)
{
    int rc = 0;
    const dist_summary_t *s0 = &res[0].s;
    for (int i = 0; i < r->o->ndrivers; i++) {
        dist_summary_t *s = &res[i].s;
        if (dlrm_metrics(s->pred, s->labels, s->samples, &res[i].m) != DLRM_OK &&
            !isnan(res[i].m.auc)) {
            fprintf(stderr, "bls-dlrm: metrics: %s\n", dlrm_last_error());
            rc = 2;
        }
        res[i].identical = s->samples == s0->samples &&
                           memcmp(s->pred, s0->pred, sizeof(float) * (size_t)s->samples) == 0;
        if (!res[i].identical) {
            fprintf(stderr, "bls-dlrm: driver %s's predictions differ from %s's\n",
                    r->o->drivers[i].name, r->o->drivers[0].name);
            rc = rc ? rc : 1;
        }
        harness_sort(s->lat, s->nlat);
    }
    return rc;
}

/* The lines above the table: data, quality, speed, memory, kernels. */
static void print_head(const report_t *r, const driver_result_t *res)
{
    const dlrm_opts_t *o = r->o;
    const dist_summary_t *s0 = &res[0].s;
    int P = r->P;
    printf("samples      %lld in %lld batches of %d%s on %d process%s\n", (long long)s0->samples,
           (long long)s0->batches, o->batch, o->data ? "" : " (synthetic)", P, P > 1 ? "es" : "");
    if (o->data)
        printf("lines        %lld read, %lld malformed skipped%s%s\n", (long long)r->lines,
               (long long)r->skipped, r->skipped ? "; last: " : "",
               r->skipped && r->last_skip ? r->last_skip : "");
    if (o->max_batches >= 0 && s0->batches < o->max_batches)
        printf("note         the data ended after %lld of the %lld batches asked for\n",
               (long long)s0->batches, (long long)o->max_batches);
    char auc[32] = "undefined (one class)";
    if (!isnan(res[0].m.auc))
        snprintf(auc, sizeof(auc), "%.6f", res[0].m.auc);
    printf("accuracy     %.6f\nroc auc      %s\nlog loss     %.6f\n", res[0].m.accuracy, auc,
           res[0].m.logloss);
    printf("in flight    p50 %.3f ms, p99 %.3f ms per batch (%s): from a batch's production on a "
           "process to its predictions there, in a closed loop; a client's latency is "
           "--scenario server's\n",
           1e3 * harness_percentile(s0->lat, s0->nlat, 0.5),
           1e3 * harness_percentile(s0->lat, s0->nlat, 0.99), o->drivers[0].name);
    printf("throughput   %.0f samples/s (%s); %.0f samples/s in the engine alone (forward pass of "
           "the busiest process)\n",
           (double)s0->samples * s0->rounds / s0->loop, o->drivers[0].name,
           (double)s0->samples * s0->rounds / s0->compute);
    printf("memory       peak RSS per process (MiB):");
    for (int p = 0; p < P; p++)
        printf(" %.0f", r->rss_kib[p] / 1024.0);
    printf("; tables held (MiB):");
    for (int p = 0; p < P; p++)
        printf(" %.0f", mib(r->table_bytes[p]));
    int same = 1;
    for (int p = 1; p < P; p++)
        same &= strcmp(r->kernels[0], r->kernels[p]) == 0;
    printf("\nkernel      ");
    for (int p = 0; p < (same ? 1 : P); p++)
        printf(" %s", r->kernels[p]);
    printf(same ? " (%s)\n\n" : " (per process; all give the same bits)\n\n",
           P > 1 ? "every process" : "the engine's Linear layers");
}

void dlrm_report_print(const report_t *r, const driver_result_t *res)
{
    const dlrm_opts_t *o = r->o;
    const dist_summary_t *s0 = &res[0].s;
    print_head(r, res);
    printf("%-12s %9s %10s %8s %8s %8s %8s %8s %6s %6s %10s %9s\n", "driver", "ms/batch",
           "samples/s", "speedup", "flt50 ms", "flt99 ms", "wait s", "ideal s", "eff", "bound",
           "auc", "identical");
    for (int i = 0; i < o->ndrivers; i++) {
        const dist_summary_t *s = &res[i].s;
        int R = s->rounds;
        printf("%-12s %9.3f %10.0f %8.3f %8.3f %8.3f %8.3f %8.3f %6.3f %6.3f %10.6f %9s\n",
               o->drivers[i].name, 1e3 * s->loop / (double)(s->batches * R),
               (double)s->samples * R / s->loop, s0->loop / s->loop,
               1e3 * harness_percentile(s->lat, s->nlat, 0.5),
               1e3 * harness_percentile(s->lat, s->nlat, 0.99), s->wait / R, s->ideal / R,
               s->ideal / s->loop, s0->ideal0 / res[0].ideal_at[i], res[i].m.auc,
               res[i].identical ? "yes" : "NO");
    }
    printf("(flt50, flt99: a batch's time in flight on a process, closed loop; not a client's "
           "latency)\n");
    printf("cpu/batch    per process, every thread (of it libbls's progress thread), us:");
    for (int i = 0; i < o->ndrivers; i++) {
        const dist_summary_t *s = &res[i].s;
        double nb = (double)s->batches * s->rounds;
        printf("%s %s %.0f (%.0f)", i ? "," : "", o->drivers[i].name, 1e6 * s->cpu / nb,
               1e6 * s->progress_cpu / nb);
    }
    printf("\n");
    for (int i = 0; i < o->ndrivers; i++)
        if (o->drivers[i].auto_lag)
            dlrm_report_lag_line(o->drivers[i].name, res[i].s.lag_hist, res[i].s.lag_hist_n);
    double bound_inf = s0->ideal0 / s0->ideal_inf;
    printf("\nideal model: unlimited lag could give at most %.3fx over synchronous on this "
           "trace.\n",
           bound_inf);
    if (bound_inf < HARNESS_NOTHING_TO_MASK)
        printf("note: nothing to mask here -- the processes' work is balanced batch by batch, "
               "or one process is persistently slower; lag absorbs jitter, not a slower "
               "process.  Rebalance the tables instead (--placement balanced).\n");
}

/* The histogram's mean, median and largest run-ahead; returns its count. */
static int64_t lag_figures(const int64_t *hist, int n, double *mean, int *p50, int *max)
{
    int64_t total = 0, below = 0;
    double sum = 0;
    for (int l = 0; l < n; l++) {
        total += hist[l];
        sum += (double)l * (double)hist[l];
        if (hist[l])
            *max = l;
    }
    *mean = total ? sum / (double)total : 0;
    *p50 = 0;
    for (int l = 0; l < n; l++) {
        below += hist[l];
        if (2 * below >= total) {
            *p50 = l;
            break;
        }
    }
    return total;
}

void dlrm_report_lag_line(const char *name, const int64_t *hist, int n)
{
    double mean = 0;
    int p50 = 0, max = 0;
    int64_t total = lag_figures(hist, n, &mean, &p50, &max);
    printf("run-ahead    %s: mean %.2f, p50 %d, max %d; share at each:", name, mean, p50, max);
    for (int l = 0; l < n && total; l++)
        if (hist[l])
            printf(" %d:%.0f%%", l, 100.0 * (double)hist[l] / (double)total);
    printf("\n");
}

cJSON *dlrm_report_lag_json(const int64_t *hist, int n, const double *seq, int64_t nseq)
{
    double mean = 0;
    int p50 = 0, max = 0;
    lag_figures(hist, n, &mean, &p50, &max);
    cJSON *j = cJSON_CreateObject(), *h = cJSON_AddArrayToObject(j, "histogram");
    cJSON_AddNumberToObject(j, "mean", mean);
    cJSON_AddNumberToObject(j, "p50", p50);
    cJSON_AddNumberToObject(j, "max", max);
    for (int l = 0; l < n; l++)
        cJSON_AddItemToArray(h, cJSON_CreateNumber((double)hist[l]));
    cJSON_AddItemToObject(j, "per_batch_mean", harness_json_numbers(seq, (size_t)nseq));
    return j;
}

static cJSON *json_config(const report_t *r)
{
    const dlrm_opts_t *o = r->o;
    const dist_scenario_t *sc = &o->scenario;
    char text[64];
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "arch_mlp_bot", o->bot);
    cJSON_AddStringToObject(c, "arch_mlp_top", o->top);
    cJSON_AddNumberToObject(c, "tables", r->cfg->n_tables);
    cJSON_AddNumberToObject(c, "d", r->cfg->d);
    cJSON_AddStringToObject(c, "op", o->op);
    cJSON_AddBoolToObject(c, "itself", o->itself);
    cJSON_AddNumberToObject(c, "batch_size", o->batch);
    cJSON_AddStringToObject(c, "data", o->data ? o->data : "synthetic");
    cJSON_AddStringToObject(c, "weights", o->weights ? o->weights : "random");
    cJSON_AddStringToObject(c, "progress", bls_progress_name(o->bls_progress));
    cJSON_AddStringToObject(c, "placement",
                            o->placement == DIST_PLACE_BALANCED ? "balanced" : "contiguous");
    harness_delay_format(&sc->delay, text, sizeof(text));
    cJSON_AddStringToObject(c, "delay", text);
    cJSON_AddNumberToObject(c, "delay_seed", (double)sc->delay.seed);
    cJSON_AddBoolToObject(c, "busy", sc->busy);
    snprintf(text, sizeof(text), "%d:%g", sc->hetero_rank, sc->hetero_factor);
    cJSON_AddStringToObject(c, "hetero", text);
    cJSON_AddNumberToObject(c, "zipf", o->synth.zipf_alpha);
    cJSON_AddStringToObject(c, "hot_tables", o->hot_spec ? o->hot_spec : "");
    cJSON_AddNumberToObject(c, "pooling", o->synth.pooling);
    cJSON_AddStringToObject(c, "table_pooling", o->pool_spec ? o->pool_spec : "");
    cJSON_AddStringToObject(c, "bursts", o->burst_spec ? o->burst_spec : "");
    cJSON_AddNumberToObject(c, "rounds", o->rounds);
    return c;
}

/* A number, or null when it is undefined (AUC of one class). */
static void add_number_or_null(cJSON *o, const char *key, double x)
{
    if (isfinite(x))
        cJSON_AddNumberToObject(o, key, x);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *json_driver(const report_t *r, const driver_result_t *res, int i)
{
    const dist_summary_t *s = &res[i].s, *s0 = &res[0].s;
    double R = s->rounds;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "name", r->o->drivers[i].name);
    cJSON_AddStringToObject(d, "mode", bls_mode_name(r->o->drivers[i].mode));
    cJSON_AddNumberToObject(d, "lag", r->o->drivers[i].lag);
    cJSON_AddBoolToObject(d, "auto_lag", r->o->drivers[i].auto_lag);
    cJSON_AddItemToObject(
        d, "run_ahead", dlrm_report_lag_json(s->lag_hist, s->lag_hist_n, s->lag_mean, s->batches));
    cJSON_AddNumberToObject(d, "seconds", s->loop / R);
    cJSON_AddNumberToObject(d, "ms_per_batch", 1e3 * s->loop / ((double)s->batches * R));
    cJSON_AddNumberToObject(d, "samples_per_s", (double)s->samples * R / s->loop);
    cJSON_AddNumberToObject(d, "speedup", s0->loop / s->loop);
    cJSON_AddNumberToObject(d, "in_flight_ms_p50", 1e3 * harness_percentile(s->lat, s->nlat, 0.5));
    cJSON_AddNumberToObject(d, "in_flight_ms_p99", 1e3 * harness_percentile(s->lat, s->nlat, 0.99));
    cJSON_AddNumberToObject(d, "wait_s_mean", s->wait / R);
    cJSON_AddNumberToObject(d, "progress_cpu_s_mean", s->progress_cpu / R);
    cJSON_AddNumberToObject(d, "progress_standby_s_mean", s->progress_standby / R);
    cJSON_AddNumberToObject(d, "cpu_us_per_batch", 1e6 * s->cpu / ((double)s->batches * R));
    cJSON_AddNumberToObject(d, "progress_cpu_us_per_batch",
                            1e6 * s->progress_cpu / ((double)s->batches * R));
    cJSON_AddNumberToObject(d, "copy_peers", s->copy_peers);
    cJSON_AddNumberToObject(d, "ideal_s", s->ideal / R);
    cJSON_AddNumberToObject(d, "ideal0_s", s->ideal0 / R);
    cJSON_AddNumberToObject(d, "ideal_inf_s", s->ideal_inf / R);
    cJSON_AddNumberToObject(d, "efficiency", s->ideal / s->loop);
    cJSON_AddNumberToObject(d, "bound", s0->ideal0 / res[0].ideal_at[i]);
    cJSON_AddNumberToObject(d, "bound_own_trace", s->ideal0 / s->ideal);
    cJSON_AddNumberToObject(d, "accuracy", res[i].m.accuracy);
    add_number_or_null(d, "auc", res[i].m.auc);
    cJSON_AddNumberToObject(d, "logloss", res[i].m.logloss);
    cJSON_AddBoolToObject(d, "identical", res[i].identical);
    return d;
}

/* Arrays of one value per process or table. */
static void add_per_process(const report_t *r, cJSON *root)
{
    int P = r->P, T = r->cfg->n_tables;
    cJSON *k = cJSON_AddArrayToObject(root, "kernels");
    for (int p = 0; p < P; p++)
        cJSON_AddItemToArray(k, cJSON_CreateString(r->kernels[p]));
    cJSON *own = cJSON_AddArrayToObject(root, "owner");
    for (int t = 0; t < T; t++)
        cJSON_AddItemToArray(own, cJSON_CreateNumber(r->L->owner[t]));
    cJSON *rss = cJSON_AddArrayToObject(root, "peak_rss_mib_per_process");
    cJSON *tab = cJSON_AddArrayToObject(root, "table_mib_per_process");
    cJSON *huge = cJSON_AddArrayToObject(root, "weights_huge_page_share_per_process");
    cJSON *held = cJSON_AddArrayToObject(root, "tables_held_per_process");
    for (int p = 0; p < P; p++) {
        cJSON_AddItemToArray(held, cJSON_CreateString(!r->o->weights ? "random"
                                                      : r->mapped[p] ? "map"
                                                                     : "copy"));
        cJSON_AddItemToArray(rss, cJSON_CreateNumber(round(r->rss_kib[p] / 102.4) / 10));
        cJSON_AddItemToArray(tab, cJSON_CreateNumber(round(mib(r->table_bytes[p]) * 10) / 10));
        cJSON_AddItemToArray(huge, cJSON_CreateNumber(round(r->huge_share[p] * 1000) / 1000));
    }
    cJSON_AddNumberToObject(root, "model_load_s", r->load_s);
}

/* The offline run's top-level members: samples, metrics, rates, "drivers". */
static void json_offline(const report_t *r, const driver_result_t *res, cJSON *root)
{
    const dist_summary_t *s0 = &res[0].s;
    cJSON_AddNumberToObject(root, "samples", (double)s0->samples);
    cJSON_AddNumberToObject(root, "batches", (double)s0->batches);
    cJSON_AddNumberToObject(root, "lines", (double)r->lines);
    cJSON_AddNumberToObject(root, "skipped_lines", (double)r->skipped);
    cJSON_AddNumberToObject(root, "accuracy", res[0].m.accuracy);
    add_number_or_null(root, "auc", res[0].m.auc);
    cJSON_AddNumberToObject(root, "logloss", res[0].m.logloss);
    cJSON_AddNumberToObject(root, "samples_per_s", (double)s0->samples * s0->rounds / s0->loop);
    cJSON_AddNumberToObject(root, "samples_per_s_forward",
                            (double)s0->samples * s0->rounds / s0->compute);
    cJSON *drivers = cJSON_AddArrayToObject(root, "drivers");
    for (int i = 0; i < r->o->ndrivers; i++)
        cJSON_AddItemToArray(drivers, json_driver(r, res, i));
}

int dlrm_report_json(const report_t *r, const driver_result_t *res, char *err, size_t len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tool", "bls-dlrm");
    cJSON_AddNumberToObject(root, "processes", r->P);
    cJSON *scen = cJSON_AddArrayToObject(root, "scenarios");
    if (r->o->offline)
        cJSON_AddItemToArray(scen, cJSON_CreateString("offline"));
    if (r->o->server)
        cJSON_AddItemToArray(scen, cJSON_CreateString("server"));
    cJSON_AddItemToObject(root, "config", json_config(r));
    add_per_process(r, root);
    if (r->o->offline)
        json_offline(r, res, root);
    if (r->serving)
        cJSON_AddItemToObject(root, "server", dlrm_report_serve_json(r));
    int rc = harness_json_write(root, r->o->json, err, len);
    cJSON_Delete(root);
    return rc;
}

int dlrm_report_predictions(const report_t *r, const float *pred, const float *labels, int64_t n,
                            FILE *f, char *err, size_t len)
{
    for (int64_t g = 0; g < n; g++)
        fprintf(f, "%.9g %d\n", pred[g], (int)labels[g]);
    if (fclose(f) != 0) {
        snprintf(err, len, "cannot write the predictions file %s", r->o->predictions);
        return -1;
    }
    return 0;
}
