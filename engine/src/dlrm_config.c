/* Model configuration from the reference's option strings, validated. */
#include "dlrm_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

dlrm_status_t dlrm_error(dlrm_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return status;
}

const char *dlrm_last_error(void) { return last_error; }

const char *dlrm_strerror(dlrm_status_t status)
{
    switch (status) {
    case DLRM_OK: return "DLRM_OK: success";
    case DLRM_ERR_ARG: return "DLRM_ERR_ARG: invalid argument or configuration";
    case DLRM_ERR_NOMEM: return "DLRM_ERR_NOMEM: out of memory";
    case DLRM_ERR_IO: return "DLRM_ERR_IO: file error";
    case DLRM_ERR_FORMAT: return "DLRM_ERR_FORMAT: malformed weights file";
    case DLRM_ERR_RANGE: return "DLRM_ERR_RANGE: embedding index out of range";
    }
    return "DLRM_ERR_?: unknown status";
}

/* Parses "a-b-c" into values; returns the count or -1 with the error set. */
static int parse_dashed(const char *what, const char *s, int64_t *out, int max)
{
    if (!s || !*s) {
        dlrm_error(DLRM_ERR_ARG, "%s is empty", what);
        return -1;
    }
    int n = 0;
    const char *p = s;
    for (;;) {
        if (n == max) {
            dlrm_error(DLRM_ERR_ARG, "%s '%s' has more than %d entries", what, s, max);
            return -1;
        }
        char *end = NULL;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno != 0 || v < 1) {
            dlrm_error(DLRM_ERR_ARG, "%s '%s': entry %d is not a positive integer", what, s, n + 1);
            return -1;
        }
        out[n++] = v;
        if (*end == '\0')
            return n;
        if (*end != '-') {
            dlrm_error(DLRM_ERR_ARG, "%s '%s': unexpected '%c' after entry %d", what, s, *end, n);
            return -1;
        }
        p = end + 1;
    }
}

int dlrm_interaction_width(const dlrm_config_t *cfg)
{
    int F = cfg->n_tables + 1;
    if (cfg->op == DLRM_INTERACT_CAT)
        return cfg->d * F;
    return cfg->d + (cfg->itself ? F * (F + 1) / 2 : F * (F - 1) / 2);
}

dlrm_status_t dlrm_config_parse(const char *arch_mlp_bot, const char *arch_mlp_top,
                                const char *arch_embedding_size, int d, const char *op,
                                int itself, dlrm_config_t *cfg)
{
    if (!cfg)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_config_parse: cfg is NULL");
    memset(cfg, 0, sizeof(*cfg));
    int64_t v[DLRM_MAX_LAYERS];
    if (d < 1)
        return dlrm_error(DLRM_ERR_ARG, "--arch-sparse-feature-size %d must be >= 1", d);
    cfg->d = d;
    if (!op || !strcmp(op, "dot"))
        cfg->op = DLRM_INTERACT_DOT;
    else if (!strcmp(op, "cat"))
        cfg->op = DLRM_INTERACT_CAT;
    else
        return dlrm_error(DLRM_ERR_ARG, "--arch-interaction-op '%s' is neither dot nor cat", op);
    cfg->itself = itself != 0;

    int n = parse_dashed("--arch-mlp-bot", arch_mlp_bot, v, DLRM_MAX_LAYERS);
    if (n < 0)
        return DLRM_ERR_ARG;
    if (n < 2)
        return dlrm_error(DLRM_ERR_ARG, "--arch-mlp-bot '%s' needs an input and at least one "
                                        "layer", arch_mlp_bot);
    for (int i = 0; i < n; i++) {
        if (v[i] > 1 << 20)
            return dlrm_error(DLRM_ERR_ARG, "--arch-mlp-bot '%s': width %lld is too large",
                              arch_mlp_bot, (long long)v[i]);
        cfg->bot[i] = (int)v[i];
    }
    cfg->n_bot = n;
    if (cfg->bot[n - 1] != d)
        return dlrm_error(DLRM_ERR_ARG,
                          "--arch-mlp-bot '%s' ends with width %d, but the embedding dimension "
                          "(--arch-sparse-feature-size) is %d: they must be equal",
                          arch_mlp_bot, cfg->bot[n - 1], d);

    int64_t *rows = malloc(sizeof(int64_t) * 4096);
    if (!rows)
        return dlrm_error(DLRM_ERR_NOMEM, "out of memory");
    n = parse_dashed("--arch-embedding-size", arch_embedding_size, rows, 4096);
    if (n < 0) {
        free(rows);
        return DLRM_ERR_ARG;
    }
    cfg->rows = rows;
    cfg->n_tables = n;

    n = parse_dashed("--arch-mlp-top", arch_mlp_top, v, DLRM_MAX_LAYERS);
    if (n < 0) {
        dlrm_config_free(cfg);
        return DLRM_ERR_ARG;
    }
    cfg->n_top = n;
    cfg->top[0] = dlrm_interaction_width(cfg);
    for (int i = 0; i < n; i++) {
        if (v[i] > 1 << 20) {
            dlrm_config_free(cfg);
            return dlrm_error(DLRM_ERR_ARG, "--arch-mlp-top '%s': width %lld is too large",
                              arch_mlp_top, (long long)v[i]);
        }
        cfg->top[i + 1] = (int)v[i];
    }
    if (cfg->top[n] != 1) {
        int last = cfg->top[n];
        dlrm_config_free(cfg);
        return dlrm_error(DLRM_ERR_ARG,
                          "--arch-mlp-top '%s' ends with width %d; the click probability needs 1",
                          arch_mlp_top, last);
    }
    return DLRM_OK;
}

void dlrm_config_free(dlrm_config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->rows);
    cfg->rows = NULL;
    cfg->n_tables = 0;
}
