/*
 * safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header naming each tensor's dtype, shape and byte range, then the raw data.
 * Loading maps the file and points the model's tensors into it: nothing is copied.  Saving
 * writes every tensor a model holds, 8-byte aligned, under the reference's state_dict names.
 */
#include "dlrm_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (100u << 20)

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

/* Maps the whole file read-only. */
static dlrm_status_t map_file(const char *path, unsigned char **map_p, size_t *len_p)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return dlrm_error(DLRM_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < 8) {
        close(fd);
        return dlrm_error(DLRM_ERR_FORMAT, "%s: too short for a safetensors file (%lld bytes)",
                          path, (long long)sb.st_size);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return dlrm_error(DLRM_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    *map_p = map;
    *len_p = len;
    return DLRM_OK;
}

/* The JSON header of a mapped file, and where its data section starts. */
static dlrm_status_t parse_header(const char *path, const unsigned char *map, size_t len,
                                  cJSON **hdr_p, size_t *data_at_p)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | map[i];
    if (hlen > MAX_HEADER_BYTES || hlen > len - 8)
        return dlrm_error(DLRM_ERR_FORMAT,
                          "%s: header length %llu does not fit the file's %zu bytes", path,
                          (unsigned long long)hlen, len);
    cJSON *hdr = cJSON_ParseWithLength((const char *)map + 8, (size_t)hlen);
    if (!hdr || !cJSON_IsObject(hdr)) {
        cJSON_Delete(hdr);
        return dlrm_error(DLRM_ERR_FORMAT, "%s: the header is not a JSON object", path);
    }
    *hdr_p = hdr;
    *data_at_p = 8 + (size_t)hlen;
    return DLRM_OK;
}

/* Points every tensor the model needs (its MLPs and the tables in want) into the data. */
static dlrm_status_t bind_tensors(dlrm_model_t *m, const cJSON *hdr, const char *path,
                                  const unsigned char *data, size_t data_len,
                                  const unsigned char *want)
{
    const dlrm_config_t *cfg = &m->cfg;
    dlrm_status_t st = DLRM_OK;
    char name[64];
    mlp_view_t v[2];
    dlrm_mlp_views(cfg, m, v);
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
    return st;
}

dlrm_status_t dlrm_model_load(const dlrm_config_t *cfg, const char *path, const int *tables,
                              int n_tables, dlrm_model_t **model_p)
{
    if (!cfg || !path || !model_p || !cfg->rows || cfg->n_tables < 1)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_model_load: cfg, path and model_p are required");
    unsigned char *want = malloc((size_t)cfg->n_tables), *map = NULL;
    if (!want)
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    size_t len = 0, data_at = 0;
    cJSON *hdr = NULL;
    dlrm_model_t *m = NULL;
    dlrm_status_t st = dlrm_table_set(cfg, tables, n_tables, want);
    if (st == DLRM_OK)
        st = map_file(path, &map, &len);
    if (st == DLRM_OK)
        st = parse_header(path, map, len, &hdr, &data_at);
    if (st == DLRM_OK)
        st = dlrm_model_alloc(cfg, &m);
    if (st == DLRM_OK) { /* the model owns the mapping from here on */
        m->map = map;
        m->map_len = len;
        map = NULL;
        st = bind_tensors(m, hdr, path, (const unsigned char *)m->map + data_at, len - data_at,
                          want);
    }
    if (st == DLRM_OK)
        st = dlrm_model_prepare(m);
    cJSON_Delete(hdr);
    free(want);
    if (map)
        munmap(map, len);
    if (st != DLRM_OK) {
        dlrm_model_free(m);
        return st;
    }
    *model_p = m;
    return DLRM_OK;
}

/* One tensor to write: its name, data and shape. */
typedef struct {
    char name[64];
    const float *data;
    int64_t rows, cols; /* cols < 0: 1-D */
} tensor_ref_t;

static size_t ref_count(const tensor_ref_t *r)
{
    return (size_t)r->rows * (size_t)(r->cols < 0 ? 1 : r->cols);
}

/* Every tensor the model holds (a process's partial model: the tables it holds). */
static int collect_refs(const dlrm_model_t *m, tensor_ref_t *refs)
{
    const dlrm_config_t *cfg = &m->cfg;
    int n = 0;
    mlp_view_t v[2];
    dlrm_mlp_views(cfg, m, v);
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++) {
            refs[n] = (tensor_ref_t){"", v[j].W[l], v[j].w[l + 1], v[j].w[l]};
            snprintf(refs[n++].name, 64, "%s.%d.weight", v[j].prefix, 2 * l);
            refs[n] = (tensor_ref_t){"", v[j].b[l], v[j].w[l + 1], -1};
            snprintf(refs[n++].name, 64, "%s.%d.bias", v[j].prefix, 2 * l);
        }
    for (int t = 0; t < cfg->n_tables; t++)
        if (m->tables[t]) {
            refs[n] = (tensor_ref_t){"", m->tables[t], cfg->rows[t], cfg->d};
            snprintf(refs[n++].name, 64, "emb_l.%d.weight", t);
        }
    return n;
}

/* The header: each tensor's dtype, shape and byte range, in order. */
static char *header_json(const tensor_ref_t *refs, int n)
{
    cJSON *hdr = cJSON_CreateObject();
    uint64_t off = 0;
    for (int i = 0; hdr && i < n; i++) {
        uint64_t bytes = (uint64_t)ref_count(&refs[i]) * sizeof(float);
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
    char *json = hdr ? cJSON_PrintUnformatted(hdr) : NULL;
    cJSON_Delete(hdr);
    return json;
}

/* Length, header padded with spaces to 8 bytes (so the tensors stay aligned), data. */
static int write_file(FILE *f, const char *json, const tensor_ref_t *refs, int n)
{
    size_t jl = strlen(json), padded = (jl + 7) & ~(size_t)7;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(json, 1, jl, f) == jl;
    for (size_t i = jl; ok && i < padded; i++)
        ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++)
        ok = fwrite(refs[i].data, sizeof(float), ref_count(&refs[i]), f) == ref_count(&refs[i]);
    return ok;
}

dlrm_status_t dlrm_model_save(const dlrm_model_t *m, const char *path)
{
    if (!m || !path)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_model_save: model and path are required");
    int max = 2 * (m->cfg.n_bot + m->cfg.n_top) + m->cfg.n_tables;
    tensor_ref_t *refs = calloc((size_t)max, sizeof(*refs));
    char *json = refs ? header_json(refs, collect_refs(m, refs)) : NULL;
    if (!json) {
        free(refs);
        return dlrm_error(DLRM_ERR_NOMEM, "dlrm_model_save: out of memory");
    }
    dlrm_status_t st = DLRM_OK;
    FILE *f = fopen(path, "wb");
    if (!f) {
        st = dlrm_error(DLRM_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
        int ok = write_file(f, json, refs, collect_refs(m, refs));
        if (fclose(f) != 0 || !ok)
            st = dlrm_error(DLRM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    free(json);
    free(refs);
    return st;
}
