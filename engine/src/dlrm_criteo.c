/*
 * Streaming reader of the Criteo Kaggle train.txt format: one sample per line, tab-separated:
 * label, 13 integer features, 26 categorical features as hex hashes; any field may be empty.
 * Transforms as the reference does: negative integers clamp to 0, then log(x + 1) in float32;
 * categorical hex value v of feature t maps to row v mod rows[t] (missing: row 0).  Lines are
 * read one at a time with a fixed buffer: the file is never held in memory.
 */
#define _GNU_SOURCE
#include "dlrm_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRITEO_DENSE 13
#define CRITEO_CAT 26
#define CRITEO_FIELDS (1 + CRITEO_DENSE + CRITEO_CAT)

struct dlrm_criteo {
    FILE *f;
    char *path;
    char *line;
    size_t cap;
    int64_t line_no;
    int64_t skipped;
    int strict;
    int64_t rows[CRITEO_CAT];
    char last_skip[300]; /* where and why the last skipped line was skipped */
};

dlrm_status_t dlrm_criteo_open(const char *path, const dlrm_config_t *cfg, int strict,
                               dlrm_criteo_t **reader_p)
{
    if (!path || !cfg || !reader_p)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_criteo_open: path, cfg and reader_p are required");
    if (cfg->bot[0] != CRITEO_DENSE || cfg->n_tables != CRITEO_CAT)
        return dlrm_error(DLRM_ERR_ARG,
                          "%s: Criteo lines have %d dense and %d categorical features, but the "
                          "model takes %d dense inputs (--arch-mlp-bot) and has %d tables",
                          path, CRITEO_DENSE, CRITEO_CAT, cfg->bot[0], cfg->n_tables);
    dlrm_criteo_t *r = calloc(1, sizeof(*r));
    if (!r)
        return dlrm_error(DLRM_ERR_NOMEM, "out of memory");
    r->cap = DLRM_CRITEO_MAX_LINE + 2;
    r->line = malloc(r->cap);
    r->path = strdup(path);
    r->strict = strict;
    memcpy(r->rows, cfg->rows, sizeof(r->rows));
    r->f = r->line && r->path ? fopen(path, "r") : NULL;
    if (!r->f) {
        dlrm_status_t st = dlrm_error(r->line && r->path ? DLRM_ERR_IO : DLRM_ERR_NOMEM, "%s: %s",
                                      path, strerror(errno));
        dlrm_criteo_close(r);
        return st;
    }
    *reader_p = r;
    return DLRM_OK;
}

void dlrm_criteo_close(dlrm_criteo_t *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r->line);
    free(r->path);
    free(r);
}

int64_t dlrm_criteo_skipped(const dlrm_criteo_t *r) { return r ? r->skipped : 0; }
int64_t dlrm_criteo_lines(const dlrm_criteo_t *r) { return r ? r->line_no : 0; }
const char *dlrm_criteo_last_skip(const dlrm_criteo_t *r) { return r ? r->last_skip : ""; }

static const char *field_name(int i, char *buf, size_t len)
{
    if (i == 0)
        snprintf(buf, len, "label");
    else if (i <= CRITEO_DENSE)
        snprintf(buf, len, "I%d", i);
    else
        snprintf(buf, len, "C%d", i - CRITEO_DENSE);
    return buf;
}

/* Parses one line into sample b; returns 0 or -1 with the problem described in err. */
static int parse_line(dlrm_criteo_t *r, char *s, int b, dlrm_samples_t *out, char *err,
                      size_t errlen)
{
    char *fields[CRITEO_FIELDS];
    int n = 0;
    char *p = s;
    for (;;) {
        if (n == CRITEO_FIELDS) {
            snprintf(err, errlen, "more than %d tab-separated fields", CRITEO_FIELDS);
            return -1;
        }
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    if (n != CRITEO_FIELDS) {
        snprintf(err, errlen, "%d tab-separated fields, expected %d (label, 13 integer, 26 "
                              "categorical)", n, CRITEO_FIELDS);
        return -1;
    }
    char name[8];
    if (strcmp(fields[0], "0") != 0 && strcmp(fields[0], "1") != 0) {
        snprintf(err, errlen, "field 1 (label) '%.20s' is not 0 or 1", fields[0]);
        return -1;
    }
    out->labels[b] = fields[0][0] == '1' ? 1.0f : 0.0f;
    for (int i = 1; i <= CRITEO_DENSE; i++) {
        long long v = 0;
        if (fields[i][0] != '\0') {
            char *end;
            errno = 0;
            v = strtoll(fields[i], &end, 10);
            if (*end != '\0' || errno != 0) {
                snprintf(err, errlen, "field %d (%s) '%.20s' is not an integer", i + 1,
                         field_name(i, name, sizeof(name)), fields[i]);
                return -1;
            }
        }
        float x = v < 0 ? 0.0f : (float)v; /* the reference: clamp, then log(x + 1) in float32 */
        out->dense[(size_t)b * CRITEO_DENSE + (size_t)(i - 1)] = logf(x + 1.0f);
    }
    for (int t = 0; t < CRITEO_CAT; t++) {
        const char *f = fields[1 + CRITEO_DENSE + t];
        unsigned long long v = 0;
        if (f[0] != '\0') {
            size_t len = strlen(f);
            if (len > 16 || strspn(f, "0123456789abcdefABCDEF") != len) {
                snprintf(err, errlen, "field %d (%s) '%.20s' is not a hexadecimal hash",
                         2 + CRITEO_DENSE + t,
                         field_name(1 + CRITEO_DENSE + t, name, sizeof(name)), f);
                return -1;
            }
            v = strtoull(f, NULL, 16);
        }
        out->indices[t][b] = (int64_t)(v % (unsigned long long)r->rows[t]);
    }
    return 0;
}

dlrm_status_t dlrm_criteo_read(dlrm_criteo_t *r, int max, dlrm_samples_t *out, int *n_p)
{
    if (!r || !out || !n_p || max < 0)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_criteo_read: bad arguments");
    int n = 0;
    while (n < max) {
        if (!fgets(r->line, (int)r->cap, r->f)) {
            if (ferror(r->f))
                return dlrm_error(DLRM_ERR_IO, "%s: read error after line %lld: %s", r->path,
                                  (long long)r->line_no, strerror(errno));
            break; /* end of file */
        }
        r->line_no++;
        size_t len = strlen(r->line);
        char err[200];
        int bad = 0;
        if (len > 0 && r->line[len - 1] == '\n') {
            r->line[--len] = '\0';
            if (len > 0 && r->line[len - 1] == '\r')
                r->line[--len] = '\0';
        } else if (!feof(r->f)) {
            /* longer than the buffer: report it and skip the rest of it */
            int c;
            while ((c = fgetc(r->f)) != EOF && c != '\n') {
            }
            snprintf(err, sizeof(err), "line longer than %d bytes", DLRM_CRITEO_MAX_LINE);
            bad = 1;
        }
        if (!bad && len == 0) {
            snprintf(err, sizeof(err), "empty line");
            bad = 1;
        }
        if (!bad && parse_line(r, r->line, n, out, err, sizeof(err)) != 0)
            bad = 1;
        if (bad) {
            if (r->strict)
                return dlrm_error(DLRM_ERR_FORMAT, "%s:%lld: %s", r->path, (long long)r->line_no,
                                  err);
            r->skipped++;
            snprintf(r->last_skip, sizeof(r->last_skip), "%s:%lld: %s", r->path,
                     (long long)r->line_no, err);
            continue;
        }
        n++;
    }
    *n_p = n;
    return DLRM_OK;
}
