/*
 * The Criteo reader and the metrics: exact values of parsed lines (missing fields, negative
 * integers, hex hashes mod rows), every kind of malformed line in strict mode (error naming file,
 * line and field) and in lenient mode (skipped and counted, good lines kept), a file ending
 * mid-batch, and metrics against values computed by hand.
 * Usage: test_criteo SCRATCH_DIR
 */
#include "dlrm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* A well-formed line: label, 13 ints, 26 hashes; fields given by the caller where non-NULL. */
static void line(FILE *f, const char *label, const char *i1, const char *c1, int ncat)
{
    fprintf(f, "%s", label);
    for (int i = 1; i <= 13; i++)
        fprintf(f, "\t%s", i == 1 && i1 ? i1 : (i == 2 ? "" : "7"));
    for (int t = 0; t < ncat; t++)
        fprintf(f, "\t%s", t == 0 && c1 ? c1 : (t == 1 ? "" : "68fd1e64"));
    fprintf(f, "\n");
}

static char emb[4096];

static void make_config(dlrm_config_t *c)
{
    char *p = emb;
    for (int t = 0; t < 26; t++)
        p += sprintf(p, "%s%d", t ? "-" : "", 1000 + t);
    if (dlrm_config_parse("13-16", "8-1", emb, 16, "dot", 0, c) != DLRM_OK)
        abort();
}

static void test_reader(const char *dir)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/criteo.txt", dir);
    FILE *f = fopen(path, "w");
    line(f, "1", "3", "000000ff", 26);   /* line 1: good */
    line(f, "0", "-5", "", 26);          /* line 2: good: negative int, empty hash */
    line(f, "0", "3", "00000001", 25);   /* line 3: 39 fields */
    line(f, "1", "3", "zz00", 26);       /* line 4: C1 not hex */
    line(f, "1", "3.5", "00000001", 26); /* line 5: I1 not an integer */
    line(f, "2", "3", "00000001", 26);   /* line 6: label */
    fprintf(f, "1");                     /* line 7: overlong */
    for (int i = 0; i < DLRM_CRITEO_MAX_LINE + 10; i++)
        fputc('\t', f);
    fprintf(f, "\n");
    line(f, "1", "", "ABCDEF12", 26); /* line 8: good, upper-case hex, empty int */
    line(f, "0", "0", "1", 26);       /* line 9: good, unterminated last line below */
    fprintf(f, "1\t1\t1\t1\t1\t1\t1\t1\t1\t1\t1\t1\t1\t1");
    for (int t = 0; t < 26; t++)
        fprintf(f, "\t%x", t);
    fclose(f);

    dlrm_config_t c;
    make_config(&c);
    float labels[8], dense[8 * 13];
    int64_t idx_store[26][8], *idx[26];
    for (int t = 0; t < 26; t++)
        idx[t] = idx_store[t];
    dlrm_samples_t s = {labels, dense, idx};
    dlrm_criteo_t *r;

    /* Strict: the first bad line is an error naming file, line and what. */
    CHECK(dlrm_criteo_open(path, &c, 1, &r) == DLRM_OK, "open: %s", dlrm_last_error());
    int n = -1;
    dlrm_status_t st = dlrm_criteo_read(r, 8, &s, &n);
    char want[2300];
    snprintf(want, sizeof(want), "%s:3: 39 tab-separated fields, expected 40", path);
    CHECK(st == DLRM_ERR_FORMAT && strstr(dlrm_last_error(), want), "strict: %s, '%s'",
          dlrm_strerror(st), dlrm_last_error());
    dlrm_criteo_close(r);

    /* Lenient: 5 bad lines skipped, 5 good ones (1, 2, 8, 9, 10) read with exact values. */
    CHECK(dlrm_criteo_open(path, &c, 0, &r) == DLRM_OK, "open");
    CHECK(dlrm_criteo_read(r, 8, &s, &n) == DLRM_OK && n == 5, "lenient read: %d samples (%s)", n,
          dlrm_last_error());
    CHECK(dlrm_criteo_skipped(r) == 5, "skipped %lld, expected 5", (long long)dlrm_criteo_skipped(r));
    CHECK(dlrm_criteo_lines(r) == 10, "lines %lld, expected 10", (long long)dlrm_criteo_lines(r));
    snprintf(want, sizeof(want), "%s:7: line longer than %d bytes", path, DLRM_CRITEO_MAX_LINE);
    CHECK(strstr(dlrm_criteo_last_skip(r), want), "last skip '%s'", dlrm_criteo_last_skip(r));
    CHECK(labels[0] == 1 && labels[1] == 0 && labels[2] == 1 && labels[3] == 0 && labels[4] == 1,
          "labels");
    CHECK(dense[0] == logf(4.0f), "I1 of line 1: %g, expected log(3+1)", dense[0]);
    CHECK(dense[1] == 0.0f, "an empty I2 is 0 -> log(1) = 0: %g", dense[1]);
    CHECK(dense[2] == logf(8.0f), "I3 of line 1: %g", dense[2]);
    CHECK(dense[13] == 0.0f, "a negative I1 clamps to 0: %g", dense[13]);
    CHECK(idx[0][0] == 255 % 1000, "C1 of line 1: %lld", (long long)idx[0][0]);
    CHECK(idx[1][0] == 0, "an empty hash is row 0: %lld", (long long)idx[1][0]);
    CHECK(idx[2][0] == (int64_t)(0x68fd1e64ULL % 1002), "C3 of line 1: %lld", (long long)idx[2][0]);
    CHECK(idx[0][1] == 0, "empty C1 of line 2: %lld", (long long)idx[0][1]);
    CHECK(idx[0][2] == (int64_t)(0xABCDEF12ULL % 1000), "upper-case hex: %lld", (long long)idx[0][2]);
    CHECK(idx[25][4] == 0x19 % 1025 && dense[4 * 13 + 12] == logf(2.0f),
          "the unterminated last line: C26 %lld, I13 %g", (long long)idx[25][4], dense[4 * 13 + 12]);
    CHECK(dlrm_criteo_read(r, 8, &s, &n) == DLRM_OK && n == 0, "end of file: %d", n);
    dlrm_criteo_close(r);

    /* Each malformed kind, alone, in strict mode: the message names the field. */
    const char *kinds[][3] = {{"1", "3", "zz00"}, {"1", "3.5", "1"}, {"2", "3", "1"}};
    const char *needles[] = {":1: field 15 (C1) 'zz00' is not a hexadecimal hash",
                             ":1: field 2 (I1) '3.5' is not an integer",
                             ":1: field 1 (label) '2' is not 0 or 1"};
    for (int k = 0; k < 3; k++) {
        f = fopen(path, "w");
        line(f, kinds[k][0], kinds[k][1], kinds[k][2], 26);
        fclose(f);
        dlrm_criteo_open(path, &c, 1, &r);
        st = dlrm_criteo_read(r, 8, &s, &n);
        CHECK(st == DLRM_ERR_FORMAT && strstr(dlrm_last_error(), needles[k]), "kind %d: '%s'", k,
              dlrm_last_error());
        dlrm_criteo_close(r);
    }

    /* A NUL byte is a malformed line of its own: it must not end the line early (and so
     * swallow the next one, shifting every later line number). */
    f = fopen(path, "w");
    fwrite("\0\n\n", 1, 3, f);    /* lines 1 (a NUL) and 2 (empty) */
    line(f, "1", "3", "00000001", 26); /* line 3: good */
    fputs("0\t4", f);                /* line 4: a good line with a NUL inside field 2 */
    fputc('\0', f);
    fputs("7", f);
    for (int i = 1; i < 13; i++)
        fputs("\t1", f);
    for (int t = 0; t < 26; t++)
        fputs("\t1", f);
    fputc('\n', f);
    line(f, "0", "5", "00000002", 26); /* line 5: good */
    fclose(f);
    CHECK(dlrm_criteo_open(path, &c, 0, &r) == DLRM_OK, "open");
    CHECK(dlrm_criteo_read(r, 8, &s, &n) == DLRM_OK && n == 2 && labels[0] == 1 && labels[1] == 0 &&
              dense[13] == logf(6.0f),
          "NUL lines: %d samples (lines 3 and 5 expected)", n);
    CHECK(dlrm_criteo_lines(r) == 5 && dlrm_criteo_skipped(r) == 3, "NUL lines: %lld lines, %lld skipped",
          (long long)dlrm_criteo_lines(r), (long long)dlrm_criteo_skipped(r));
    snprintf(want, sizeof(want), "%s:4: a NUL byte at column 4", path);
    CHECK(strstr(dlrm_criteo_last_skip(r), want), "NUL last skip '%s'", dlrm_criteo_last_skip(r));
    dlrm_criteo_close(r);
    CHECK(dlrm_criteo_open(path, &c, 1, &r) == DLRM_OK, "open");
    snprintf(want, sizeof(want), "%s:1: a NUL byte at column 1", path);
    CHECK(dlrm_criteo_read(r, 8, &s, &n) == DLRM_ERR_FORMAT && strstr(dlrm_last_error(), want),
          "strict NUL: '%s'", dlrm_last_error());
    dlrm_criteo_close(r);
    CHECK(dlrm_criteo_open("/nonexistent/criteo.txt", &c, 1, &r) == DLRM_ERR_IO, "missing file");
    dlrm_config_t small;
    dlrm_config_parse("4-16", "8-1", "10-10", 16, "dot", 0, &small);
    CHECK(dlrm_criteo_open(path, &small, 1, &r) == DLRM_ERR_ARG &&
              strstr(dlrm_last_error(), "model takes 4 dense inputs"),
          "shape check: %s", dlrm_last_error());
    dlrm_config_free(&small);
    /* A directory (as a FIFO would) is refused by name before any open could block. */
    CHECK(dlrm_criteo_open(dir, &c, 1, &r) == DLRM_ERR_ARG && strstr(dlrm_last_error(), "not a regular file"),
          "directory as data: %s", dlrm_last_error());
    dlrm_config_free(&c);
}

static void test_metrics(void)
{
    dlrm_metrics_t m;
    /* sklearn's documented example: AUC 0.75. */
    float p[] = {0.1f, 0.4f, 0.35f, 0.8f}, y[] = {0, 0, 1, 1};
    CHECK(dlrm_metrics(p, y, 4, &m) == DLRM_OK, "metrics");
    CHECK(fabs(m.auc - 0.75) < 1e-12, "auc %g", m.auc);
    CHECK(fabs(m.accuracy - 0.75) < 1e-12, "accuracy %g", m.accuracy);
    double ll = -(log(1 - (double)0.1f) + log(1 - (double)0.4f) + log((double)0.35f) + log((double)0.8f)) / 4;
    CHECK(fabs(m.logloss - ll) < 1e-12, "logloss %.12g, expected %.12g", m.logloss, ll);
    /* Ties count half; 0.5 rounds to 0 as numpy's round does. */
    float pt[] = {0.5f, 0.5f, 0.5f, 0.5f}, yt[] = {0, 1, 0, 1};
    CHECK(dlrm_metrics(pt, yt, 4, &m) == DLRM_OK && fabs(m.auc - 0.5) < 1e-12, "ties: %g", m.auc);
    CHECK(fabs(m.accuracy - 0.5) < 1e-12, "0.5 rounds to 0: accuracy %g", m.accuracy);
    float y1[] = {1, 1, 1, 1};
    CHECK(dlrm_metrics(p, y1, 4, &m) == DLRM_ERR_ARG && isnan(m.auc) &&
              strstr(dlrm_last_error(), "only positive labels"),
          "one class: %s", dlrm_last_error());
    float yb[] = {0, 2, 0, 1};
    CHECK(dlrm_metrics(p, yb, 4, &m) == DLRM_ERR_ARG && strstr(dlrm_last_error(), "label 1 is 2"),
          "bad label: %s", dlrm_last_error());
    /* A NaN used to spin forever in the tie loop; infinities are no probabilities either. */
    float pn[] = {0.1f, NAN, 0.35f, 0.8f}, pi[] = {0.1f, 0.4f, 0.35f, -INFINITY};
    CHECK(dlrm_metrics(pn, y, 4, &m) == DLRM_ERR_ARG && !isnan(m.auc) &&
              strstr(dlrm_last_error(), "prediction 1 is NaN"),
          "NaN prediction: %s", dlrm_last_error());
    CHECK(dlrm_metrics(pi, y, 4, &m) == DLRM_ERR_ARG && strstr(dlrm_last_error(), "prediction 3 is -inf"),
          "infinite prediction: %s", dlrm_last_error());
}

int main(int argc, char **argv)
{
    test_reader(argc > 1 ? argv[1] : "/tmp");
    test_metrics();
    printf("test_criteo: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
