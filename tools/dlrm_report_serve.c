/* bls-dlrm's report of server runs and peak searches (dlrm_report.h). */
#include "dlrm_report.h"

#include <math.h>
#include <string.h>

static double pct(const serve_result_t *v, double q)
{
    return 1e3 * harness_percentile(v->lat, v->n, q);
}

static double mean_ms(const double *x, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    return n ? 1e3 * sum / (double)n : 0;
}

static double completed_qps(const serve_result_t *v)
{
    return v->last_done > 0 ? (double)v->queries / v->last_done : 0;
}

static double scheduled_qps(const serve_result_t *v)
{
    return v->last_arrival > 0 ? (double)v->queries / v->last_arrival : 0;
}

int dlrm_report_serve_check(const report_t *r)
{
    serving_t *sv = r->serving;
    int rc = 0;
    for (int i = 0; sv->res && i < r->o->ndrivers; i++) {
        serve_result_t *v = &sv->res[i], *v0 = &sv->res[0];
        harness_sort(v->lat, v->n);
        harness_sort(v->ideal, v->n);
        harness_sort(v->queue, v->n);
        v->valid = !v->stopped_early && harness_percentile(v->lat, v->n, 0.99) <= r->o->bound &&
                   completed_qps(v) >= DIST_KEEP_UP * scheduled_qps(v);
        v->identical = v->n_pred == v0->n_pred &&
                       memcmp(v->pred, v0->pred, sizeof(float) * (size_t)v->n_pred) == 0;
        if (!v->identical) {
            fprintf(stderr, "bls-dlrm: server driver %s's predictions differ from %s's\n",
                    r->o->drivers[i].name, r->o->drivers[0].name);
            rc = 1;
        }
    }
    return rc;
}

/* The lines above the table: the schedule and the clocks. */
static void print_serve_head(const report_t *r)
{
    const dlrm_opts_t *o = r->o;
    const serving_t *sv = r->serving;
    char sizes[64];
    harness_size_format(&o->sizes, sizes, sizeof(sizes));
    if (o->find_peak)
        printf(
            "\nserving      a peak search: probes of %lld queries, Poisson arrivals, the first at "
            "%.1f queries/s",
            (long long)o->probe_queries, sv->qps);
    else
        printf("\nserving      %lld queries, Poisson arrivals at %.1f queries/s",
               (long long)o->queries, sv->qps);
    if (sv->reference_qps > 0)
        printf(" (%.2f x %.1f, %s)", o->load, sv->reference_qps, sv->reference);
    printf(", sizes %s, schedule seed %llu\n", sizes, (unsigned long long)o->schedule_seed);
    printf("             latency: from a query's arrival to its last prediction, on the slowest "
           "process; bound p99 <= %.0f ms\n",
           1e3 * o->bound);
    if (sv->all_shared)
        printf("clock        one host: every process reads process 0's CLOCK_MONOTONIC\n");
    else
        printf("clock        processes on other hosts: offsets from process 0 by ping-pong, "
               "uncertainty up to %.1f us\n",
               1e6 * sv->worst_uncertainty);
}

void dlrm_report_serve_print(const report_t *r)
{
    const dlrm_opts_t *o = r->o;
    const serving_t *sv = r->serving;
    print_serve_head(r);
    if (!sv->res)
        return;
    printf("%-12s %8s %8s %9s %7s %7s %7s %7s %7s %7s %7s %7s %8s %6s %9s\n", "driver", "sched/s",
           "done/s", "samples/s", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max",
           "ideal p99", "valid", "identical");
    for (int i = 0; i < o->ndrivers; i++) {
        const serve_result_t *v = &sv->res[i];
        printf("%-12s %8.1f %8.1f %9.0f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %8.2f "
               "%6s %9s\n",
               o->drivers[i].name, scheduled_qps(v), completed_qps(v),
               v->last_done > 0 ? (double)v->samples / v->last_done : 0, pct(v, 0),
               mean_ms(v->lat, v->n), pct(v, 0.5), pct(v, 0.9), pct(v, 0.95), pct(v, 0.99),
               pct(v, 0.999), pct(v, 1), 1e3 * harness_percentile(v->ideal, v->n, 0.99),
               v->valid ? "VALID" : "no", v->identical ? "yes" : "NO");
    }
    printf("(milliseconds; ideal p99: the open-loop ideal model on each run's measured work, "
           "zero communication)\n");
    for (int i = 0; i < o->ndrivers; i++)
        if (o->drivers[i].auto_lag)
            dlrm_report_lag_line(o->drivers[i].name, sv->res[i].lag_hist, sv->res[i].lag_hist_n);
    if (sv->offline_identical >= 0)
        printf("predictions  server runs %s the offline run's, bit for bit\n",
               sv->offline_identical ? "equal" : "DIFFER FROM");
}

/* The peak search's table: per driver the highest rate within the bound. */
void dlrm_report_peak_print(const report_t *r)
{
    const dlrm_opts_t *o = r->o;
    const serving_t *sv = r->serving;
    printf("\npeak         the highest Poisson rate with p99 <= %.0f ms and the completed rate "
           ">= %.2f of it (%lld queries a probe)\n",
           1e3 * o->bound, DIST_KEEP_UP, (long long)o->probe_queries);
    printf("%-12s %10s %10s %12s %7s\n", "driver", "peak q/s", "p99 there", "ideal p99", "probes");
    for (int i = 0; i < o->ndrivers; i++) {
        const dist_peak_t *pk = &sv->peak[i];
        const dist_probe_t *at = NULL;
        for (int j = 0; j < pk->n_probes; j++)
            if (pk->probes[j].valid && pk->probes[j].qps == pk->peak_qps)
                at = &pk->probes[j];
        printf("%-12s %10.1f %10.2f %12.2f %7d\n", o->drivers[i].name, pk->peak_qps,
               at ? 1e3 * at->p99 : NAN, at ? 1e3 * at->ideal_p99 : NAN, pk->n_probes);
    }
    for (int i = 1; i < o->ndrivers && sv->peak[0].peak_qps > 0; i++)
        printf("%s over %s: %.2fx the rate within the bound\n", o->drivers[i].name,
               o->drivers[0].name, sv->peak[i].peak_qps / sv->peak[0].peak_qps);
}

static cJSON *json_latency(const double *sorted, size_t n)
{
    cJSON *l = cJSON_CreateObject();
    const char *k[] = {"min", "p50", "p90", "p95", "p99", "p99.9", "max"};
    const double q[] = {0, 0.5, 0.9, 0.95, 0.99, 0.999, 1};
    cJSON_AddNumberToObject(l, "mean", mean_ms(sorted, n));
    for (int i = 0; i < 7; i++)
        cJSON_AddNumberToObject(l, k[i], 1e3 * harness_percentile(sorted, n, q[i]));
    return l;
}

static cJSON *json_serve_driver(const report_t *r, int i)
{
    const serve_result_t *v = &r->serving->res[i];
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "name", r->o->drivers[i].name);
    cJSON_AddNumberToObject(d, "lag", r->o->drivers[i].lag);
    cJSON_AddBoolToObject(d, "auto_lag", r->o->drivers[i].auto_lag);
    cJSON_AddItemToObject(
        d, "run_ahead",
        dlrm_report_lag_json(v->lag_hist, v->lag_hist_n, v->lag_mean, v->n_lag_mean));
    cJSON_AddNumberToObject(d, "queries", (double)v->queries);
    cJSON_AddNumberToObject(d, "scheduled_qps", scheduled_qps(v));
    cJSON_AddNumberToObject(d, "completed_qps", completed_qps(v));
    cJSON_AddNumberToObject(d, "samples_per_s", v->last_done > 0 ? v->samples / v->last_done : 0);
    cJSON_AddItemToObject(d, "latency_ms", json_latency(v->lat, v->n));
    cJSON_AddItemToObject(d, "ideal_latency_ms", json_latency(v->ideal, v->n));
    cJSON_AddItemToObject(d, "queue_ms", json_latency(v->queue, v->n));
    cJSON_AddNumberToObject(d, "wait_s_mean", v->wait);
    cJSON_AddNumberToObject(d, "copy_peers", v->copy_peers);
    cJSON_AddBoolToObject(d, "valid", v->valid);
    cJSON_AddBoolToObject(d, "identical", v->identical);
    return d;
}

static cJSON *json_peak(const report_t *r)
{
    cJSON *p = cJSON_CreateObject(), *drivers = cJSON_AddArrayToObject(p, "drivers");
    cJSON_AddNumberToObject(p, "probe_queries", (double)r->o->probe_queries);
    for (int i = 0; i < r->o->ndrivers; i++) {
        const dist_peak_t *pk = &r->serving->peak[i];
        cJSON *d = cJSON_CreateObject(), *probes = cJSON_CreateArray();
        cJSON_AddStringToObject(d, "name", r->o->drivers[i].name);
        cJSON_AddNumberToObject(d, "peak_qps", pk->peak_qps);
        for (int j = 0; j < pk->n_probes; j++) {
            const dist_probe_t *b = &pk->probes[j];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "qps", b->qps);
            cJSON_AddBoolToObject(e, "valid", b->valid);
            cJSON_AddNumberToObject(e, "p50_ms", 1e3 * b->p50);
            cJSON_AddNumberToObject(e, "p99_ms", 1e3 * b->p99);
            cJSON_AddNumberToObject(e, "ideal_p99_ms", 1e3 * b->ideal_p99);
            cJSON_AddNumberToObject(e, "completed_qps", b->completed_qps);
            cJSON_AddNumberToObject(e, "queries", (double)b->queries);
            cJSON_AddBoolToObject(e, "stopped_early", b->stopped_early);
            cJSON_AddItemToArray(probes, e);
        }
        cJSON_AddItemToObject(d, "probes", probes);
        cJSON_AddItemToArray(drivers, d);
    }
    return p;
}

cJSON *dlrm_report_serve_json(const report_t *r)
{
    const dlrm_opts_t *o = r->o;
    const serving_t *sv = r->serving;
    char sizes[64];
    harness_size_format(&o->sizes, sizes, sizeof(sizes));
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "qps", sv->qps);
    cJSON_AddNumberToObject(s, "load", sv->reference_qps > 0 ? o->load : 0);
    cJSON_AddNumberToObject(s, "reference_qps", sv->reference_qps);
    cJSON_AddNumberToObject(s, "queries", (double)o->queries);
    cJSON_AddStringToObject(s, "query_size", sizes);
    cJSON_AddNumberToObject(s, "schedule_seed", (double)o->schedule_seed);
    cJSON_AddNumberToObject(s, "latency_bound_ms", 1e3 * o->bound);
    cJSON_AddBoolToObject(s, "clock_shared", sv->all_shared);
    cJSON_AddNumberToObject(s, "clock_uncertainty_us", 1e6 * sv->worst_uncertainty);
    cJSON *est = cJSON_AddArrayToObject(s, "clock_estimates");
    for (int p = 0; sv->clock_estimates && p < r->P; p++) { /* the ping-pong's, even on one host */
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "offset_us", 1e6 * sv->clock_estimates[2 * p]);
        cJSON_AddNumberToObject(e, "bound_us", 1e6 * sv->clock_estimates[2 * p + 1]);
        cJSON_AddItemToArray(est, e);
    }
    if (sv->offline_identical >= 0)
        cJSON_AddBoolToObject(s, "identical_to_offline", sv->offline_identical);
    if (sv->res) {
        cJSON *drivers = cJSON_AddArrayToObject(s, "drivers");
        for (int i = 0; i < o->ndrivers; i++)
            cJSON_AddItemToArray(drivers, json_serve_driver(r, i));
    }
    if (sv->peak)
        cJSON_AddItemToObject(s, "peak", json_peak(r));
    return s;
}
