/*
 * Model weights: seeded random initialisation with the reference's distributions, and
 * safetensors files (mapped, never copied).
 *
 * Random values come from a counter-based generator: value i of tensor s is a function of
 * (seed, s, i) alone, so any process can build any subset of the tables and agree with every
 * other process bit for bit, and a table is filled without generating what precedes it.
 */
#define _GNU_SOURCE
#include "dlrm_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (100u << 20)

/* Uniform in (0, 1). */
static double unit(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint64_t h =
        splitmix64_mix(splitmix64_mix(seed ^ splitmix64_mix(stream + SPLITMIX64_GAMMA)) + i);
    return splitmix64_unit(h);
}

static void fill_uniform(float *x, size_t n, float bound, uint64_t seed, uint64_t stream)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * unit(seed, stream, i) - 1.0) * bound);
}

static void fill_normal(float *x, size_t n, double sd, uint64_t seed, uint64_t stream)
{
    for (size_t i = 0; i < n; i++) { /* Box-Muller on two counters per value */
        double u1 = unit(seed, stream, 2 * i), u2 = unit(seed, stream, 2 * i + 1);
        x[i] = (float)(sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

enum { STREAM_BOT = 1000, STREAM_TOP = 2000, STREAM_TABLE = 1000000 };

/*
 * The two MLPs seen alike, so initialisation, loading and saving handle both with one loop:
 * the state_dict prefix, the widths (input first), the number of Linear layers, where their
 * tensors live (layer l: weight [w[l+1], w[l]], bias [w[l+1]]) and their random stream.
 */
typedef struct {
    const char *prefix;
    const int *w;
    int layers;
    const float **W, **b;
    uint64_t stream;
    dlrm_linear_t *lin; /* the packed layers (dlrm_model_prepare) */
} mlp_view_t;

/* m may be NULL (sizes only).  dlrm_model_save reads through a const model's views. */
static void mlp_views(const dlrm_config_t *cfg, const dlrm_model_t *m, mlp_view_t v[2])
{
    dlrm_model_t *mm = (dlrm_model_t *)m;
    v[0] = (mlp_view_t){"bot_l",
                        cfg->bot,
                        cfg->n_bot - 1,
                        mm ? mm->bot_w : NULL,
                        mm ? mm->bot_b : NULL,
                        STREAM_BOT,
                        mm ? mm->bot_lin : NULL};
    v[1] = (mlp_view_t){"top_l",
                        cfg->top,
                        cfg->n_top,
                        mm ? mm->top_w : NULL,
                        mm ? mm->top_b : NULL,
                        STREAM_TOP,
                        mm ? mm->top_lin : NULL};
}

dlrm_status_t dlrm_model_prepare(dlrm_model_t *m)
{
    dlrm_status_t st = dlrm_kernel_check();
    if (st != DLRM_OK)
        return st;
    mlp_view_t v[2];
    mlp_views(&m->cfg, m, v);
    size_t total = 0;
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++)
            if (v[j].w[l + 1] > 1)
                total += dlrm_linear_floats(v[j].w[l], v[j].w[l + 1]);
    if (total == 0)
        return DLRM_OK;
    float *p = m->derived = aligned_alloc(64, sizeof(float) * total);
    if (!p)
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory for the packed weights");
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++) {
            int fi = v[j].w[l], fo = v[j].w[l + 1];
            if (fo == 1)
                continue; /* a dot product per sample (dlrm_forward.c) */
            dlrm_linear_pack(v[j].W[l], v[j].b[l], fi, fo, p, &v[j].lin[l]);
            p += dlrm_linear_floats(fi, fo);
        }
    return DLRM_OK;
}

dlrm_status_t dlrm_model_alloc(const dlrm_config_t *cfg, dlrm_model_t **model_p)
{
    if (!cfg || !model_p || !cfg->rows || cfg->n_tables < 1)
        return dlrm_error(DLRM_ERR_ARG, "model: configuration is missing or has no tables");
    dlrm_model_t *m = calloc(1, sizeof(*m));
    if (!m)
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->cfg.rows = malloc(sizeof(int64_t) * (size_t)cfg->n_tables);
    m->tables = calloc((size_t)cfg->n_tables, sizeof(float *));
    if (!m->cfg.rows || !m->tables) {
        free(m->cfg.rows);
        free(m->tables);
        free(m);
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    }
    memcpy(m->cfg.rows, cfg->rows, sizeof(int64_t) * (size_t)cfg->n_tables);
    *model_p = m;
    return DLRM_OK;
}

/* Expands a table list (NULL: every table) into want[n_tables] flags, checking every entry. */
static dlrm_status_t table_set(const dlrm_config_t *cfg, const int *tables, int n,
                               unsigned char *want)
{
    memset(want, tables ? 0 : 1, (size_t)cfg->n_tables);
    if (!tables)
        return DLRM_OK;
    if (n < 0)
        return dlrm_error(DLRM_ERR_ARG, "table list length %d is negative", n);
    for (int i = 0; i < n; i++) {
        if (tables[i] < 0 || tables[i] >= cfg->n_tables)
            return dlrm_error(DLRM_ERR_ARG,
                              "table list entry %d: table %d is not within the "
                              "model's %d tables",
                              i, tables[i], cfg->n_tables);
        if (want[tables[i]])
            return dlrm_error(DLRM_ERR_ARG, "table list entry %d: table %d is listed twice", i,
                              tables[i]);
        want[tables[i]] = 1;
    }
    return DLRM_OK;
}

dlrm_status_t dlrm_model_init_random(const dlrm_config_t *cfg, uint64_t seed, const int *tables,
                                     int n_tables, dlrm_model_t **model_p)
{
    if (!cfg || !model_p || !cfg->rows || cfg->n_tables < 1)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_model_init_random: cfg and model_p are required");
    unsigned char *want = malloc((size_t)cfg->n_tables);
    if (!want)
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    dlrm_status_t st = table_set(cfg, tables, n_tables, want);
    if (st != DLRM_OK) {
        free(want);
        return st;
    }
    mlp_view_t v[2];
    mlp_views(cfg, NULL, v);
    size_t total = 0;
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++)
            total += (size_t)v[j].w[l + 1] * ((size_t)v[j].w[l] + 1);
    for (int t = 0; t < cfg->n_tables; t++) {
        if (!want[t])
            continue;
        if ((uint64_t)cfg->rows[t] > (SIZE_MAX / sizeof(float) - total) / (size_t)cfg->d) {
            free(want);
            return dlrm_error(DLRM_ERR_ARG, "table %d: %lld rows x %d do not fit in memory", t,
                              (long long)cfg->rows[t], cfg->d);
        }
        total += (size_t)cfg->rows[t] * (size_t)cfg->d;
    }
    dlrm_model_t *m;
    if ((st = dlrm_model_alloc(cfg, &m)) != DLRM_OK) {
        free(want);
        return st;
    }
    /* Lookups hit random rows of tables far larger than the caches: with 4 KiB pages nearly
     * every one also misses the TLB and walks the page tables.  2 MiB pages (transparent huge
     * pages, asked for with madvise since Debian's default is "madvise") cut that: the
     * lookup rate went from 7-12 to 14-20 M rows/s (bench/RESULTS.md).  Without THP the hint
     * is ignored and the pages are normal ones. */
    m->owned_len = total * sizeof(float) + 1;
    m->owned = mmap(NULL, m->owned_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m->owned == MAP_FAILED)
        m->owned = NULL;
    else
        (void)madvise(m->owned, m->owned_len, MADV_HUGEPAGE);
    if (!m->owned) {
        free(want);
        dlrm_model_free(m);
        return dlrm_error(DLRM_ERR_NOMEM, "model: cannot allocate %zu MiB of weights",
                          total * sizeof(float) >> 20);
    }
    float *p = m->owned;
    mlp_views(cfg, m, v);
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++) {
            int in = v[j].w[l], out = v[j].w[l + 1];
            uint64_t stream = v[j].stream + 2 * (uint64_t)l;
            fill_normal(p, (size_t)out * in, sqrt(2.0 / (in + out)), seed, stream);
            v[j].W[l] = p;
            p += (size_t)out * in;
            fill_normal(p, (size_t)out, sqrt(1.0 / out), seed, stream + 1);
            v[j].b[l] = p;
            p += out;
        }
    for (int t = 0; t < cfg->n_tables; t++) {
        if (!want[t])
            continue;
        size_t n = (size_t)cfg->rows[t] * (size_t)cfg->d;
        fill_uniform(p, n, (float)sqrt(1.0 / (double)cfg->rows[t]), seed,
                     STREAM_TABLE + (uint64_t)t);
        m->tables[t] = p;
        p += n;
    }
    free(want);
    if ((st = dlrm_model_prepare(m)) != DLRM_OK) {
        dlrm_model_free(m);
        return st;
    }
    *model_p = m;
    return DLRM_OK;
}

void dlrm_model_free(dlrm_model_t *m)
{
    if (!m)
        return;
    if (m->map)
        munmap(m->map, m->map_len);
    if (m->owned)
        munmap(m->owned, m->owned_len);
    free(m->derived);
    free(m->tables);
    free(m->cfg.rows);
    free(m);
}

const dlrm_config_t *dlrm_model_config(const dlrm_model_t *m)
{
    return m ? &m->cfg : NULL;
}

const float *dlrm_model_table(const dlrm_model_t *m, int t)
{
    return m && t >= 0 && t < m->cfg.n_tables ? m->tables[t] : NULL;
}

/* ---- safetensors ---- */

/* Finds tensor `name` of the expected 2-D (or 1-D when cols < 0) shape in the header. */
static dlrm_status_t find_tensor(const cJSON *hdr, const char *path, const char *name, int64_t rows,
                                 int64_t cols, const unsigned char *data, size_t data_len,
                                 const float **out)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(hdr, name);
    if (!t)
        return dlrm_error(DLRM_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return dlrm_error(DLRM_ERR_FORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets",
                          path, name);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return dlrm_error(DLRM_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32", path, name,
                          dtype->valuestring);
    int want_dims = cols < 0 ? 1 : 2;
    int64_t dims[2] = {0, 0};
    int nd = cJSON_GetArraySize(shape);
    for (int i = 0; i < nd && i < 2; i++) {
        const cJSON *x = cJSON_GetArrayItem(shape, i);
        dims[i] = cJSON_IsNumber(x) ? (int64_t)x->valuedouble : -1;
    }
    if (nd != want_dims || dims[0] != rows || (want_dims == 2 && dims[1] != cols)) {
        char got[64];
        if (nd == 2)
            snprintf(got, sizeof(got), "[%lld, %lld]", (long long)dims[0], (long long)dims[1]);
        else if (nd == 1)
            snprintf(got, sizeof(got), "[%lld]", (long long)dims[0]);
        else
            snprintf(got, sizeof(got), "%d dimensions", nd);
        if (want_dims == 2)
            return dlrm_error(DLRM_ERR_FORMAT,
                              "%s: tensor '%s' has shape %s, the model needs [%lld, %lld]", path,
                              name, got, (long long)rows, (long long)cols);
        return dlrm_error(DLRM_ERR_FORMAT, "%s: tensor '%s' has shape %s, the model needs [%lld]",
                          path, name, got, (long long)rows);
    }
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble,
           e = cJSON_GetArrayItem(offs, 1)->valuedouble;
    uint64_t need = (uint64_t)rows * (uint64_t)(cols < 0 ? 1 : cols) * sizeof(float);
    if (b < 0 || e < b || (uint64_t)e > data_len || (uint64_t)(e - b) != need)
        return dlrm_error(DLRM_ERR_FORMAT,
                          "%s: tensor '%s' has data_offsets [%.0f, %.0f] but needs %llu bytes "
                          "inside a data section of %zu bytes (truncated file?)",
                          path, name, b, e, (unsigned long long)need, data_len);
    if (((uintptr_t)(data + (size_t)b)) % sizeof(float) != 0)
        return dlrm_error(DLRM_ERR_FORMAT, "%s: tensor '%s' is not 4-byte aligned in the file",
                          path, name);
    *out = (const float *)(data + (size_t)b);
    return DLRM_OK;
}

dlrm_status_t dlrm_model_load(const dlrm_config_t *cfg, const char *path, const int *tables,
                              int n_tables, dlrm_model_t **model_p)
{
    if (!cfg || !path || !model_p || !cfg->rows || cfg->n_tables < 1)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_model_load: cfg, path and model_p are required");
    unsigned char *want = malloc((size_t)cfg->n_tables);
    if (!want)
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    dlrm_status_t st = table_set(cfg, tables, n_tables, want);
    int fd = st == DLRM_OK ? open(path, O_RDONLY) : -1;
    if (st != DLRM_OK || fd < 0) {
        free(want);
        return st != DLRM_OK ? st : dlrm_error(DLRM_ERR_IO, "%s: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 8) {
        close(fd);
        free(want);
        return dlrm_error(DLRM_ERR_FORMAT, "%s: too short for a safetensors file (%lld bytes)",
                          path, (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        free(want);
        return dlrm_error(DLRM_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | map[i];
    if (hlen > MAX_HEADER_BYTES || hlen > len - 8) {
        munmap(map, len);
        free(want);
        return dlrm_error(DLRM_ERR_FORMAT,
                          "%s: header length %llu does not fit the file's %zu bytes", path,
                          (unsigned long long)hlen, len);
    }
    cJSON *hdr = cJSON_ParseWithLength((const char *)map + 8, (size_t)hlen);
    if (!hdr || !cJSON_IsObject(hdr)) {
        cJSON_Delete(hdr);
        munmap(map, len);
        free(want);
        return dlrm_error(DLRM_ERR_FORMAT, "%s: the header is not a JSON object", path);
    }
    const unsigned char *data = map + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    dlrm_model_t *m = NULL;
    st = dlrm_model_alloc(cfg, &m);
    if (st == DLRM_OK) {
        m->map = map;
        m->map_len = len;
    } else {
        munmap(map, len);
    }
    char name[64];
    mlp_view_t v[2];
    if (st == DLRM_OK)
        mlp_views(cfg, m, v);
    for (int j = 0; j < 2 && st == DLRM_OK; j++)
        for (int l = 0; st == DLRM_OK && l < v[j].layers; l++) {
            snprintf(name, sizeof(name), "%s.%d.weight", v[j].prefix, 2 * l);
            st = find_tensor(hdr, path, name, v[j].w[l + 1], v[j].w[l], data, data_len, &v[j].W[l]);
            snprintf(name, sizeof(name), "%s.%d.bias", v[j].prefix, 2 * l);
            if (st == DLRM_OK)
                st = find_tensor(hdr, path, name, v[j].w[l + 1], -1, data, data_len, &v[j].b[l]);
        }
    for (int t = 0; st == DLRM_OK && t < cfg->n_tables; t++) {
        if (!want[t])
            continue;
        snprintf(name, sizeof(name), "emb_l.%d.weight", t);
        st = find_tensor(hdr, path, name, cfg->rows[t], cfg->d, data, data_len, &m->tables[t]);
    }
    cJSON_Delete(hdr);
    free(want);
    if (st == DLRM_OK)
        st = dlrm_model_prepare(m);
    if (st != DLRM_OK) {
        dlrm_model_free(m);
        return st;
    }
    *model_p = m;
    return DLRM_OK;
}

/* Appends one tensor entry to the header and its bytes to the list written later. */
typedef struct {
    const char *name;
    const float *data;
    int64_t rows, cols; /* cols < 0: 1-D */
} tensor_ref_t;

dlrm_status_t dlrm_model_save(const dlrm_model_t *m, const char *path)
{
    if (!m || !path)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_model_save: model and path are required");
    const dlrm_config_t *cfg = &m->cfg;
    int max = 2 * (cfg->n_bot + cfg->n_top) + cfg->n_tables;
    tensor_ref_t *refs = calloc((size_t)max, sizeof(*refs));
    char(*names)[64] = calloc((size_t)max, 64);
    if (!refs || !names) {
        free(refs);
        free(names);
        return dlrm_error(DLRM_ERR_NOMEM, "dlrm_model_save: out of memory");
    }
    int n = 0;
    mlp_view_t v[2];
    mlp_views(cfg, m, v);
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++) {
            snprintf(names[n], 64, "%s.%d.weight", v[j].prefix, 2 * l);
            refs[n] = (tensor_ref_t){names[n], v[j].W[l], v[j].w[l + 1], v[j].w[l]};
            n++;
            snprintf(names[n], 64, "%s.%d.bias", v[j].prefix, 2 * l);
            refs[n] = (tensor_ref_t){names[n], v[j].b[l], v[j].w[l + 1], -1};
            n++;
        }
    for (int t = 0; t < cfg->n_tables; t++) {
        if (!m->tables[t])
            continue; /* a process's partial model saves what it holds */
        snprintf(names[n], 64, "emb_l.%d.weight", t);
        refs[n] = (tensor_ref_t){names[n], m->tables[t], cfg->rows[t], cfg->d};
        n++;
    }
    cJSON *hdr = cJSON_CreateObject();
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes =
            (uint64_t)refs[i].rows * (uint64_t)(refs[i].cols < 0 ? 1 : refs[i].cols) * 4;
        cJSON *t = cJSON_AddObjectToObject(hdr, refs[i].name);
        cJSON_AddStringToObject(t, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)refs[i].rows));
        if (refs[i].cols >= 0)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)refs[i].cols));
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *json = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    dlrm_status_t st = DLRM_OK;
    FILE *f = json ? fopen(path, "wb") : NULL;
    if (!f) {
        st = json ? dlrm_error(DLRM_ERR_IO, "%s: %s", path, strerror(errno))
                  : dlrm_error(DLRM_ERR_NOMEM, "dlrm_model_save: out of memory");
    } else {
        size_t jl = strlen(json), padded = (jl + 7) & ~(size_t)7; /* keep tensors aligned */
        unsigned char len8[8];
        for (int i = 0; i < 8; i++)
            len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
        int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(json, 1, jl, f) == jl;
        for (size_t i = jl; ok && i < padded; i++)
            ok = fputc(' ', f) != EOF;
        for (int i = 0; ok && i < n; i++) {
            size_t cnt = (size_t)refs[i].rows * (size_t)(refs[i].cols < 0 ? 1 : refs[i].cols);
            ok = fwrite(refs[i].data, sizeof(float), cnt, f) == cnt;
        }
        if (fclose(f) != 0 || !ok)
            st = dlrm_error(DLRM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    free(json);
    free(refs);
    free(names);
    return st;
}
