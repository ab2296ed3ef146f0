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
#include <sys/stat.h>

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
    struct stat sb; /* a FIFO would block the open; and a run rewinds the file */
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return dlrm_error(DLRM_ERR_ARG, "%s: not a regular file (runs read it from the start again)",
                          path);
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

/* The next line into r->line, without its newline (and a '\r' before it), NUL-terminated.
 * Returns its length, -1 at the end of the file (or a read error), -2 when it is longer than
 * DLRM_CRITEO_MAX_LINE (the rest of it consumed).  *nul is 1 + the column of its first NUL byte
 * (0: none): fgets cannot tell a NUL from the line's end, and a NUL must not end a line early. */
static long read_line(dlrm_criteo_t *r, long *nul)
{
    size_t len = 0;
    int c, any = 0, over = 0;
    *nul = 0;
    while ((c = getc_unlocked(r->f)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        if (len + 1 >= r->cap) {
            over = 1; /* keep reading to the newline */
            continue;
        }
        if (c == '\0' && *nul == 0)
            *nul = (long)len + 1;
        r->line[len++] = (char)c;
    }
    if (!any || (c == EOF && ferror(r->f)))
        return -1;
    if (len > 0 && r->line[len - 1] == '\r')
        len--;
    r->line[len] = '\0';
    return over || len > DLRM_CRITEO_MAX_LINE ? -2 : (long)len;
}

dlrm_status_t dlrm_criteo_read(dlrm_criteo_t *r, int max, dlrm_samples_t *out, int *n_p)
{
    if (!r || !out || !n_p || max < 0)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_criteo_read: bad arguments");
    int n = 0;
    while (n < max) {
        long nul, len = read_line(r, &nul);
        if (len == -1) {
            if (ferror(r->f))
                return dlrm_error(DLRM_ERR_IO, "%s: read error after line %lld: %s", r->path,
                                  (long long)r->line_no, strerror(errno));
            break; /* end of file */
        }
        r->line_no++;
        char err[200];
        int bad = 0;
        if (len == -2) {
            snprintf(err, sizeof(err), "line longer than %d bytes", DLRM_CRITEO_MAX_LINE);
            bad = 1;
        } else if (nul) {
            snprintf(err, sizeof(err), "a NUL byte at column %ld", nul);
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
