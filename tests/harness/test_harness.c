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
    CHECK(harness_json_write(cJSON_CreateNull(), "/nonexistent/dir/x.json", err, sizeof(err)) ==
                  -1 &&
              strstr(err, "/nonexistent/dir/x.json"),
          "an unwritable path: %s", err);
}

static void check_drivers(void)
{
    harness_driver_t d[HARNESS_MAX_DRIVERS];
    char err[256];
    int n = harness_drivers_parse("sync,bls:1,bls,window,ialltoallv,ialltoallv:2", 4, d,
                                  HARNESS_MAX_DRIVERS, err, sizeof(err));
    const char *names[] = {"sync", "bls:1", "bls:4", "window:4", "ialltoallv", "ialltoallv:2"};
    const int lags[] = {0, 1, 4, 4, 0, 2};
    CHECK(n == 6, "6 drivers, got %d (%s)", n, err);
    for (int i = 0; i < n && i < 6; i++)
        CHECK(!strcmp(d[i].name, names[i]) && d[i].lag == lags[i], "driver %d: %s lag %d", i,
              d[i].name, d[i].lag);
    CHECK(harness_drivers_parse("sync,bls:x", 4, d, 16, err, sizeof(err)) == -1 &&
              strstr(err, "unknown driver 'bls:x'"),
          "bls:x: %s", err);
    CHECK(harness_drivers_parse("sync,pairwise", 4, d, 16, err, sizeof(err)) == -1 &&
              strstr(err, "unknown driver 'pairwise'"),
          "pairwise: %s", err);
    CHECK(harness_drivers_parse(",", 4, d, 16, err, sizeof(err)) == -1 && strstr(err, "empty"),
          "an empty list: %s", err);
    CHECK(harness_drivers_parse("sync,sync,sync", 4, d, 2, err, sizeof(err)) == -1 &&
              strstr(err, "at most 2"),
          "too many: %s", err);
    for (int r = 0; r < 3; r++) { /* each round runs every driver once, the order rotating */
        int seen = 0;
        for (int i = 0; i < 3; i++)
            seen |= 1 << harness_round_driver(r, i, 3);
        CHECK(seen == 7 && harness_round_driver(r, 0, 3) == r, "round %d's order", r);
    }
}

static void check_delays(void)
{
    harness_delay_t d = {0, 0, 0, 42};
    char err[256], text[64];
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
}

int main(int argc, char **argv)
{
    check_json(argc > 1 ? argv[1] : ".");
    check_drivers();
    check_delays();
    printf("test_harness: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
