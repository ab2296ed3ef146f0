/*
 * The harness (harness.h) against what its users rely on: JSON that parses back to exactly what
 * was written (strings with quotes, backslashes, control characters and UTF-8; numbers to the
 * last bit; NaN as null), driver lists with their names and errors, delay specs and their
 * traces, and the rotation of the interleaved rounds.
 * Usage: test_harness SCRATCH_DIR
 */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/check.h"

static void check_json(const char *dir)
{
    const char *nasty = "we\"ird\\name\n\ttab \x01 caf\xc3\xa9";
    const double nums[] = {0.1, 1e300, 5, -2.5e-7, 1.0 / 3.0, 123456789012345.0};
    char path[2048], err[256];
    snprintf(path, sizeof(path), "%s/harness.json", dir);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, nasty, nasty);
    cJSON_AddItemToObject(root, "nums", harness_json_numbers(nums, 6));
    double nan_inf[2] = {NAN, INFINITY};
    cJSON_AddItemToObject(root, "undefined", harness_json_numbers(nan_inf, 2));
    cJSON *list = cJSON_AddArrayToObject(root, "objects");
    cJSON_AddItemToArray(list, cJSON_CreateObject());
    cJSON_AddBoolToObject(cJSON_GetArrayItem(list, 0), "yes", 1);
    CHECK(harness_json_write(root, path, err, sizeof(err)) == 0, "write: %s", err);
    cJSON_Delete(root);
    FILE *f = fopen(path, "r");
    char text[4096] = "";
    size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    cJSON *back = cJSON_Parse(text);
    CHECK(back != NULL, "the file does not parse as JSON:\n%s", text);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(back, nasty);
    CHECK(cJSON_IsString(s) && !strcmp(s->valuestring, nasty), "the string did not survive");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(back, "nums");
    for (int i = 0; i < 6; i++)
        CHECK(cJSON_GetArrayItem(a, i) && cJSON_GetArrayItem(a, i)->valuedouble == nums[i],
              "number %d: %.17g read back as %.17g", i, nums[i],
              cJSON_GetArrayItem(a, i) ? cJSON_GetArrayItem(a, i)->valuedouble : -1.0);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(back, "undefined");
    CHECK(cJSON_IsNull(cJSON_GetArrayItem(u, 0)) && cJSON_IsNull(cJSON_GetArrayItem(u, 1)),
          "NaN and infinity are not null");
    CHECK(strstr(text, "\"nums\": [0.1, 1e+300, 5,") != NULL, "arrays of numbers on one line:\n%s",
          text);
    cJSON_Delete(back);
    cJSON *null = cJSON_CreateNull();
    CHECK(harness_json_write(null, "/nonexistent/dir/x.json", err, sizeof(err)) == -1 &&
              strstr(err, "/nonexistent/dir/x.json"),
          "an unwritable path: %s", err);
    cJSON_Delete(null);
}

static void check_drivers(void)
{
    harness_driver_t d[HARNESS_MAX_DRIVERS];
    char err[256];
    int n = harness_drivers_parse("sync,bls:1,bls,window,ialltoallv,ialltoallv:2", 4, 0, d,
                                  HARNESS_MAX_DRIVERS, err, sizeof(err));
    const char *names[] = {"sync", "bls:1", "bls:4", "window:4", "ialltoallv", "ialltoallv:2"};
    const int lags[] = {0, 1, 4, 4, 0, 2};
    CHECK(n == 6, "6 drivers, got %d (%s)", n, err);
    for (int i = 0; i < n && i < 6; i++)
        CHECK(!strcmp(d[i].name, names[i]) && d[i].lag == lags[i], "driver %d: %s lag %d", i,
              d[i].name, d[i].lag);
    CHECK(harness_drivers_parse("sync,bls:x", 4, 0, d, 16, err, sizeof(err)) == -1 &&
              strstr(err, "unknown driver 'bls:x'"),
          "bls:x: %s", err);
    CHECK(harness_drivers_parse("sync,pairwise", 4, 0, d, 16, err, sizeof(err)) == -1 &&
              strstr(err, "unknown driver 'pairwise'"),
          "pairwise: %s", err);
    CHECK(harness_drivers_parse(",", 4, 0, d, 16, err, sizeof(err)) == -1 && strstr(err, "empty"),
          "an empty list: %s", err);
    CHECK(harness_drivers_parse("sync,sync,sync", 4, 0, d, 2, err, sizeof(err)) == -1 &&
              strstr(err, "at most 2"),
          "too many: %s", err);
    CHECK(harness_drivers_parse("bls:auto,bls:auto:2,bls:3", 4, 0, d, 16, err, sizeof(err)) == 3 &&
              d[0].auto_lag && d[0].lag == HARNESS_AUTO_LAG_MAX &&
              !strcmp(d[0].name, "bls:auto:8") && d[1].auto_lag && d[1].lag == 2 &&
              !strcmp(d[1].name, "bls:auto:2") && !d[2].auto_lag && d[2].lag == 3,
          "auto drivers: %s", err);
    CHECK(harness_drivers_parse("sync,bls,window", 6, 1, d, 16, err, sizeof(err)) == 3 &&
              !d[0].auto_lag && d[1].auto_lag && d[1].lag == 6 &&
              !strcmp(d[1].name, "bls:auto:6") && !d[2].auto_lag && d[2].lag == 6,
          "--lag auto:6 makes a plain bls auto: %s", err);
    CHECK(harness_drivers_parse("bls:auto:x", 4, 0, d, 16, err, sizeof(err)) == -1 &&
              strstr(err, "bls:auto:x"),
          "bls:auto:x: %s", err);
    CHECK(harness_drivers_parse("bls:auto:5000", 4, 0, d, 16, err, sizeof(err)) == -1 &&
              strstr(err, "[0, 4096]"),
          "bls:auto:5000: %s", err);
    for (int r = 0; r < 3; r++) { /* each round runs every driver once, the order rotating */
        int seen = 0;
        for (int i = 0; i < 3; i++)
            seen |= 1 << harness_round_driver(r, i, 3);
        CHECK(seen == 7 && harness_round_driver(r, 0, 3) == r, "round %d's order", r);
    }
}

static void check_delays(void)
{
    harness_delay_t d = {.seed = 42};
    char err[512], text[64];
    CHECK(harness_delay_parse("exp:2000", &d, err, sizeof(err)) == 0 && d.seed == 42, "exp");
    harness_delay_format(&d, text, sizeof(text));
    CHECK(!strcmp(text, "exp:2000"), "format: %s", text);
    double sum = 0;
    for (long k = 0; k < 20000; k++)
        sum += harness_delay_us(&d, 1, k);
    CHECK(fabs(sum / 20000 - 2000) < 60, "exp:2000 has mean %.1f", sum / 20000);
    CHECK(harness_delay_us(&d, 3, 7) == harness_delay_us(&d, 3, 7) &&
              harness_delay_us(&d, 3, 7) != harness_delay_us(&d, 2, 7),
          "a function of (p, k)");
    CHECK(harness_delay_parse("straggler:1:500", &d, err, sizeof(err)) == 0 &&
              harness_delay_us(&d, 1, 9) == 500 && harness_delay_us(&d, 0, 9) == 0,
          "straggler");
    CHECK(harness_delay_parse("hiccup:1.5:10", &d, err, sizeof(err)) == -1 &&
              strstr(err, "got 'hiccup:1.5:10'"),
          "a probability above 1: %s", err);
    CHECK(harness_delay_parse("exp:", &d, err, sizeof(err)) == -1, "exp without a mean");
    /* Log-normal: the median and the log's deviation, from 20,000 draws. */
    CHECK(harness_delay_parse("lognormal:1000:0.5", &d, err, sizeof(err)) == 0, "lognormal");
    harness_delay_format(&d, text, sizeof(text));
    CHECK(!strcmp(text, "lognormal:1000:0.5"), "lognormal format: %s", text);
    double lsum = 0, lsq = 0;
    long below = 0;
    for (long k = 0; k < 20000; k++) {
        double x = harness_delay_us(&d, 2, k);
        below += x < 1000;
        lsum += log(x);
        lsq += log(x) * log(x);
    }
    double lmean = lsum / 20000, lsd = sqrt(lsq / 20000 - lmean * lmean);
    CHECK(fabs((double)below / 20000 - 0.5) < 0.02 && fabs(lmean - log(1000)) < 0.02 &&
              fabs(lsd - 0.5) < 0.02,
          "lognormal:1000:0.5: share below the median %.3f, log mean %.3f, log sd %.3f",
          (double)below / 20000, lmean, lsd);
    CHECK(harness_delay_parse("lognormal:1000:5", &d, err, sizeof(err)) == -1 &&
              strstr(err, "0 <= SIGMA <= 4"),
          "a sigma above 4: %s", err);
    /* Co-scheduled: every process late in the same iterations, in about PROB of them. */
    CHECK(harness_delay_parse("cosched:0.1:700", &d, err, sizeof(err)) == 0, "cosched");
    long late = 0, together = 1;
    for (long k = 0; k < 20000; k++) {
        double x = harness_delay_us(&d, 0, k);
        late += x == 700;
        for (int p = 1; p < 5; p++)
            together &= harness_delay_us(&d, p, k) == x;
    }
    CHECK(together && labs(late - 2000) < 200, "cosched:0.1:700: %ld late, together %ld", late,
          together);
    CHECK(harness_delay_parse("cosched:2:700", &d, err, sizeof(err)) == -1, "cosched PROB 2");
    CHECK(harness_delay_parse("spike:2:17:30000", &d, err, sizeof(err)) == 0 &&
              harness_delay_us(&d, 2, 17) == 30000 && harness_delay_us(&d, 2, 16) == 0 &&
              harness_delay_us(&d, 1, 17) == 0,
          "spike: once, on one process");
    harness_delay_format(&d, text, sizeof(text));
    CHECK(!strcmp(text, "spike:2:17:30000"), "spike format: %s", text);
    CHECK(harness_delay_parse("spike:2:1.5:30", &d, err, sizeof(err)) == -1 &&
              strstr(err, "spike:RANK:ITER:US"),
          "a fractional iteration: %s", err);
    /* Two phases: A's trace before the switch, B's from it on, and the text back. */
    harness_delay_t e = {.seed = 42}, x = {.seed = 42};
    CHECK(harness_delay_parse("exp:2000/100/straggler:1:500", &d, err, sizeof(err)) == 0 &&
              d.seed == 42 && harness_delay_parse("exp:2000", &e, err, sizeof(err)) == 0,
          "two phases: %s", err);
    int same = 1;
    for (long k = 0; k < 100; k++)
        same &= harness_delay_us(&d, 2, k) == harness_delay_us(&e, 2, k);
    CHECK(same, "the first phase is exp:2000's trace");
    CHECK(harness_delay_us(&d, 1, 100) == 500 && harness_delay_us(&d, 0, 100) == 0 &&
              harness_delay_us(&d, 1, 5000) == 500,
          "the second phase is the straggler");
    harness_delay_format(&d, text, sizeof(text));
    CHECK(!strcmp(text, "exp:2000/100/straggler:1:500"), "two phases' format: %s", text);
    CHECK(harness_delay_parse(text, &x, err, sizeof(err)) == 0 && x.until == 100, "parsed back");
    const char *bad[] = {
        "exp:2000/0/none",           "exp:2000/10",       "exp:2000/10/",  "/10/none",
        "exp:2000/10/none/20/exp:1", "exp:2000/1.5/none", "exp:1/10/bogus"};
    for (int i = 0; i < 7; i++)
        CHECK(harness_delay_parse(bad[i], &x, err, sizeof(err)) == -1 && strstr(err, "A/ITER/B") &&
                  strstr(err, bad[i]),
              "'%s' refused: %s", bad[i], err);
}

static void check_schedules(void)
{
    harness_size_t fixed, uni, logn;
    char err[256];
    CHECK(harness_size_parse("fixed:256", &fixed, err, sizeof(err)) == 0, "fixed: %s", err);
    CHECK(harness_size_parse("uniform:100:700", &uni, err, sizeof(err)) == 0, "uniform: %s", err);
    CHECK(harness_size_parse("lognormal:300:0.5", &logn, err, sizeof(err)) == 0, "lognormal: %s",
          err);
    const char *bad[] = {"fixed:0",       "uniform:5:3", "lognormal:x",
                         "lognormal:100", "poisson:3",   "fixed:2.5"};
    for (int i = 0; i < 6; i++)
        CHECK(harness_size_parse(bad[i], &fixed, err, sizeof(err)) == -1 && strstr(err, bad[i]),
              "'%s' accepted (%s)", bad[i], err);
    harness_size_parse("fixed:256", &fixed, err, sizeof(err));
    harness_schedule_t a, b, c;
    int n = 20000;
    CHECK(harness_schedule_make(7, 100.0, n, &uni, 1, 4096, &a, err, sizeof(err)) == 0, "%s", err);
    CHECK(harness_schedule_make(7, 100.0, n, &uni, 1, 4096, &b, err, sizeof(err)) == 0, "%s", err);
    CHECK(memcmp(a.at, b.at, sizeof(double) * (size_t)n) == 0 &&
              memcmp(a.size, b.size, sizeof(int) * (size_t)n) == 0,
          "one seed, two schedules");
    harness_schedule_free(&b);
    CHECK(harness_schedule_make(7, 400.0, n, &uni, 1, 4096, &b, err, sizeof(err)) == 0, "%s", err);
    int stretched = 1, in_range = 1;
    double sum = 0;
    for (int k = 0; k < n; k++) {
        stretched &= fabs(b.at[k] * 4 - a.at[k]) <= 1e-12 * a.at[k] && b.size[k] == a.size[k];
        in_range &= a.size[k] >= 100 && a.size[k] <= 700 && (k == 0 || a.at[k] > a.at[k - 1]);
        sum += a.size[k];
    }
    CHECK(stretched, "a rate 4 times higher is not the same trace 4 times faster");
    CHECK(in_range, "uniform:100:700 sizes out of range, or arrivals not increasing");
    CHECK(fabs(a.at[n - 1] / n - 0.01) < 0.0003, "mean gap %.5f s at 100 queries/s",
          a.at[n - 1] / n);
    CHECK(fabs(sum / n - 400) < 4, "uniform:100:700 has mean %.1f", sum / n);
    harness_schedule_free(&b);
    CHECK(harness_schedule_make(3, 50.0, n, &logn, 1, 600, &b, err, sizeof(err)) == 0, "%s", err);
    int clamped = 0, most = 0;
    sum = 0;
    for (int k = 0; k < n; k++) {
        clamped += b.size[k] == 600;
        most = b.size[k] > most ? b.size[k] : most;
        sum += b.size[k];
    }
    /* P(exp(mu + 0.5 z) > 600), mu = ln 300 - 0.125: P(z > 1.636) = 5.1% */
    CHECK(most == 600 && clamped > n * 0.04 && clamped < n * 0.062,
          "lognormal clamped at 600: %d of %d queries, expected about 5.1%%", clamped, n);
    CHECK(fabs(sum / n - 300) < 15, "lognormal:300:0.5 has mean %.1f", sum / n);
    CHECK(harness_schedule_make(7, 0, 10, &fixed, 1, 10, &c, err, sizeof(err)) == -1 &&
              strstr(err, "rate > 0"),
          "a zero rate: %s", err);
    harness_schedule_free(&a);
    harness_schedule_free(&b);
}

static void check_ideal_open(void)
{
    /* P=2, K=3: p0 works 1,1,1, p1 2,2,2; arrivals 0, 0.5, 10; lag 0.  done(0) = 2; query 1
     * waits for done(0): starts 2, done 2+2 = 4; query 2 arrives after: 10 + 2 = 12. */
    const double work[] = {1, 1, 1, 2, 2, 2}, arrival[] = {0, 0.5, 10};
    double done[3], scratch[8];
    harness_ideal_open(work, arrival, 2, 3, 0, done, scratch);
    CHECK(done[0] == 2 && done[1] == 4 && done[2] == 12, "lag 0: done %g %g %g", done[0], done[1],
          done[2]);
    /* Lag 1: query 1 need not wait for query 0's end: p0 sends it at 2, p1 at 4. */
    harness_ideal_open(work, arrival, 2, 3, 1, done, scratch);
    CHECK(done[1] == 4, "lag 1: done(1) = %g", done[1]);
    /* Everything at 0: the closed-loop model, for random traces and lags. */
    uint64_t s = 99;
    double w[4 * 50], at0[50] = {0}, d50[50], sc[64];
    for (int i = 0; i < 200; i++) {
        s = s * 6364136223846793005ULL + 1;
        w[i] = (double)(s >> 40) / 16777216.0;
    }
    for (int lag = 0; lag <= 5; lag++)
        CHECK(harness_ideal_open(w, at0, 4, 50, lag, d50, sc) ==
                  harness_ideal_time(w, 4, 50, lag, sc),
              "lag %d: the open model at arrival 0 differs from the closed one", lag);
}

int main(int argc, char **argv)
{
    check_json(argc > 1 ? argv[1] : ".");
    check_drivers();
    check_delays();
    check_schedules();
    check_ideal_open();
    printf("test_harness: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
