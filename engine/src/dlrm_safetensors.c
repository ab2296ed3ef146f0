/*
 * safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header naming each tensor's dtype, shape and byte range, then the raw data.
 * Loading reads (pread) every tensor the model needs into the model's own memory, tables on
 * 2 MiB pages like random ones: the file is not used after the load, so rewriting or
 * truncating it under a running job changes nothing.  A file that changes during the load is
 * a short read: an error.  When memory is short (or asked), the tables stay in the file,
 * mapped read-only (DLRM_HOLD_MAP): no copy, one page cache for every process of a host, at
 * the price of 4 KiB pages (slower random lookups) and a file that must not change under the
 * job (a mapping would follow a rewrite silently, or SIGBUS on a cut).
 * Saving writes every tensor a model holds, 8-byte aligned, under the reference's state_dict
 * names, to a temporary file renamed into place, so a reader never sees half a file.
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

/* A JSON number that is a whole number in [0, 2^53] (every such double is exact), else -1:
 * shapes and offsets from a file are checked before any conversion to an integer type. */
static int64_t json_count(const cJSON *x)
{
    if (!cJSON_IsNumber(x))
        return -1;
    double v = x->valuedouble;
    if (!isfinite(v) || v < 0 || v > 9007199254740992.0 || v != floor(v))
        return -1;
    return (int64_t)v;
}

/* Finds tensor `name` of the expected 2-D (or 1-D when cols < 0) shape in the header. */
static dlrm_status_t find_tensor(const cJSON *hdr, const char *path, const char *name, int64_t rows,
                                 int64_t cols, size_t data_len, uint64_t *at, uint64_t *bytes)
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
        dims[i] = json_count(x);
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
    /* check_header has made sure 0 <= b <= e <= data_len; dlrm_model_own, that the tensor's
     * bytes fit a size_t. */
    int64_t b = json_count(cJSON_GetArrayItem(offs, 0)),
            e = json_count(cJSON_GetArrayItem(offs, 1));
    uint64_t need = (uint64_t)rows * (uint64_t)(cols < 0 ? 1 : cols) * sizeof(float);
    if ((uint64_t)(e - b) != need)
        return dlrm_error(DLRM_ERR_FORMAT,
                          "%s: tensor '%s' has data_offsets [%lld, %lld] but needs %llu bytes "
                          "inside a data section of %zu bytes (truncated file?)",
                          path, name, (long long)b, (long long)e, (unsigned long long)need,
                          data_len);
    *at = (uint64_t)b;
    *bytes = need;
    return DLRM_OK;
}

/* Reads exactly n bytes at offset; a short read means the file shrank under us. */
static dlrm_status_t read_at(int fd, const char *path, void *buf, size_t n, uint64_t off,
                             const char *what)
{
    for (size_t done = 0; done < n;) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dlrm_error(DLRM_ERR_IO, "%s: reading %s: %s", path, what, strerror(errno));
        if (r == 0)
            return dlrm_error(DLRM_ERR_FORMAT,
                              "%s: %s ends after %zu of %zu bytes (the file was cut or changed "
                              "while loading?)",
                              path, what, done, n);
        done += (size_t)r;
    }
    return DLRM_OK;
}

/* 0 when s[0..n) is UTF-8 (the safetensors header must be), else 1 + the offset of the first
 * byte that breaks it: a bad lead byte, a missing continuation, an overlong form, a surrogate
 * or a code point above U+10FFFF. */
static size_t utf8_invalid_at(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        int len = c < 0x80             ? 1
                  : (c & 0xE0) == 0xC0 ? 2
                  : (c & 0xF0) == 0xE0 ? 3
                  : (c & 0xF8) == 0xF0 ? 4
                                       : 0;
        if (len == 0 || i + (size_t)len > n)
            return i + 1;
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (int k = 1; k < len; k++) {
            if ((u[i + (size_t)k] & 0xC0) != 0x80)
                return i + 1;
            cp = (cp << 6) | (u[i + (size_t)k] & 0x3F);
        }
        static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i + 1;
        i += (size_t)len;
    }
    return 0;
}

/* The JSON header, and the data section's offset and length. */
static dlrm_status_t read_header(int fd, const char *path, cJSON **hdr_p, size_t *data_at_p,
                                 size_t *data_len_p)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return dlrm_error(DLRM_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return dlrm_error(DLRM_ERR_FORMAT, "%s: not a regular file", path);
    size_t len = (size_t)sb.st_size;
    if (sb.st_size < 8)
        return dlrm_error(DLRM_ERR_FORMAT, "%s: too short for a safetensors file (%lld bytes)",
                          path, (long long)sb.st_size);
    unsigned char len8[8];
    dlrm_status_t st = read_at(fd, path, len8, 8, 0, "the header length");
    if (st != DLRM_OK)
        return st;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | len8[i];
    if (hlen > MAX_HEADER_BYTES || hlen > len - 8)
        return dlrm_error(DLRM_ERR_FORMAT,
                          "%s: header length %llu does not fit the file's %zu bytes", path,
                          (unsigned long long)hlen, len);
    char *text = malloc((size_t)hlen + 1);
    if (!text)
        return dlrm_error(DLRM_ERR_NOMEM, "%s: out of memory for the header", path);
    st = read_at(fd, path, text, (size_t)hlen, 8, "the header");
    size_t bad_at = st == DLRM_OK ? utf8_invalid_at(text, (size_t)hlen) : 0;
    cJSON *hdr = st == DLRM_OK && !bad_at ? cJSON_ParseWithLength(text, (size_t)hlen) : NULL;
    free(text);
    if (st != DLRM_OK)
        return st;
    if (bad_at)
        return dlrm_error(DLRM_ERR_FORMAT, "%s: the header is not UTF-8 (byte %zu of it)", path,
                          bad_at - 1);
    if (!hdr || !cJSON_IsObject(hdr)) {
        cJSON_Delete(hdr);
        return dlrm_error(DLRM_ERR_FORMAT, "%s: the header is not a JSON object", path);
    }
    *hdr_p = hdr;
    *data_at_p = 8 + (size_t)hlen;
    *data_len_p = len - *data_at_p;
    return DLRM_OK;
}

typedef struct {
    int64_t b, e;
    const char *name;
} extent_t;

static int by_start(const void *x, const void *y)
{
    const extent_t *a = x, *b = y;
    return (a->b > b->b) - (a->b < b->b);
}

/* The whole header, not only the tensors this process reads: every entry (but __metadata__)
 * named once, with data_offsets of whole numbers inside the data section, no two overlapping.
 * A file that breaks these is not what any writer meant; better named than half-used. */
static dlrm_status_t check_header(const cJSON *hdr, const char *path, size_t data_len)
{
    int n = cJSON_GetArraySize(hdr);
    extent_t *x = calloc((size_t)n + 1, sizeof(*x));
    if (!x)
        return dlrm_error(DLRM_ERR_NOMEM, "%s: out of memory for the header", path);
    int k = 0;
    dlrm_status_t st = DLRM_OK;
    for (const cJSON *t = hdr->child; t && st == DLRM_OK; t = t->next) {
        if (!strcmp(t->string, "__metadata__"))
            continue;
        for (int i = 0; i < k && st == DLRM_OK; i++)
            if (!strcmp(x[i].name, t->string))
                st = dlrm_error(DLRM_ERR_FORMAT, "%s: tensor '%s' appears twice in the header",
                                path, t->string);
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        int64_t b = cJSON_GetArraySize(offs) == 2 ? json_count(cJSON_GetArrayItem(offs, 0)) : -1;
        int64_t e = cJSON_GetArraySize(offs) == 2 ? json_count(cJSON_GetArrayItem(offs, 1)) : -1;
        if (st == DLRM_OK && (b < 0 || e < b))
            st = dlrm_error(DLRM_ERR_FORMAT,
                            "%s: tensor '%s' has data_offsets that are not whole numbers "
                            "[begin, end], 0 <= begin <= end <= 2^53",
                            path, t->string);
        else if (st == DLRM_OK && (uint64_t)e > data_len)
            st = dlrm_error(DLRM_ERR_FORMAT,
                            "%s: tensor '%s' ends at byte %lld, past the data section's %zu "
                            "bytes (truncated file?)",
                            path, t->string, (long long)e, data_len);
        x[k++] = (extent_t){b, e, t->string};
    }
    if (st == DLRM_OK) {
        qsort(x, (size_t)k, sizeof(*x), by_start);
        for (int i = 1; i < k && st == DLRM_OK; i++)
            if (x[i].b < x[i - 1].e)
                st = dlrm_error(DLRM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the file",
                                path, x[i - 1].name, x[i].name);
    }
    free(x);
    return st;
}

/* Checks one tensor's entry and reads it into dst (the model's own memory). */
static dlrm_status_t load_tensor(int fd, const cJSON *hdr, const char *path, const char *name,
                                 int64_t rows, int64_t cols, size_t data_at, size_t data_len,
                                 const float *dst)
{
    uint64_t at = 0, bytes = 0;
    dlrm_status_t st = find_tensor(hdr, path, name, rows, cols, data_len, &at, &bytes);
    return st == DLRM_OK ? read_at(fd, path, (void *)dst, (size_t)bytes, data_at + at, name) : st;
}

/* Reads every tensor the model needs (its MLPs and the tables in want); with a file mapping
 * (map != NULL) the tables point into it instead of being read. */
static dlrm_status_t load_tensors(dlrm_model_t *m, const cJSON *hdr, const char *path, int fd,
                                  size_t data_at, size_t data_len, const unsigned char *want,
                                  const char *map)
{
    const dlrm_config_t *cfg = &m->cfg;
    dlrm_status_t st = DLRM_OK;
    char name[64];
    mlp_view_t v[2];
    dlrm_mlp_views(cfg, m, v);
    for (int j = 0; j < 2 && st == DLRM_OK; j++)
        for (int l = 0; st == DLRM_OK && l < v[j].layers; l++) {
            snprintf(name, sizeof(name), "%s.%d.weight", v[j].prefix, 2 * l);
            st = load_tensor(fd, hdr, path, name, v[j].w[l + 1], v[j].w[l], data_at, data_len,
                             v[j].W[l]);
            snprintf(name, sizeof(name), "%s.%d.bias", v[j].prefix, 2 * l);
            if (st == DLRM_OK)
                st = load_tensor(fd, hdr, path, name, v[j].w[l + 1], -1, data_at, data_len,
                                 v[j].b[l]);
        }
    for (int t = 0; st == DLRM_OK && t < cfg->n_tables; t++) {
        if (!want[t])
            continue;
        snprintf(name, sizeof(name), "emb_l.%d.weight", t);
        if (!map) {
            st = load_tensor(fd, hdr, path, name, cfg->rows[t], cfg->d, data_at, data_len,
                             m->tables[t]);
            continue;
        }
        uint64_t at = 0, bytes = 0; /* aligned: checked before the file was mapped */
        st = find_tensor(hdr, path, name, cfg->rows[t], cfg->d, data_len, &at, &bytes);
        if (st == DLRM_OK) {
            m->tables[t] = (const float *)(map + data_at + at);
            m->file_table_bytes += (size_t)bytes;
        }
    }
    return st;
}

/* Bytes of the tables in want as the configuration sizes them (the file is checked later). */
static uint64_t wanted_table_bytes(const dlrm_config_t *cfg, const unsigned char *want)
{
    uint64_t n = 0;
    for (int t = 0; t < cfg->n_tables; t++)
        if (want[t])
            n += (uint64_t)cfg->rows[t] * (uint64_t)cfg->d * sizeof(float);
    return n;
}

/* MemAvailable from /proc/meminfo in bytes, or 0 when it cannot be read. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (uint64_t)kib * 1024;
}

/* The first table in want that starts at an offset of the file that is not a multiple of 4
 * (a mapping cannot hold it as floats), or -1; *at_p gets its offset.  Tables missing from the
 * header are left to find_tensor's error. */
static int unaligned_table(const dlrm_config_t *cfg, const cJSON *hdr, size_t data_at,
                           const unsigned char *want, uint64_t *at_p)
{
    char name[64];
    for (int t = 0; t < cfg->n_tables; t++) {
        if (!want[t])
            continue;
        snprintf(name, sizeof(name), "emb_l.%d.weight", t);
        const cJSON *offs = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(hdr, name), "data_offsets");
        int64_t b = json_count(cJSON_GetArrayItem(offs, 0));
        *at_p = data_at + (uint64_t)b;
        if (b >= 0 && *at_p % sizeof(float) != 0)
            return t;
    }
    return -1;
}

dlrm_status_t dlrm_model_load(const dlrm_config_t *cfg, const char *path, const int *tables,
                              int n_tables, dlrm_model_t **model_p)
{
    return dlrm_model_load_held(cfg, path, tables, n_tables, DLRM_HOLD_AUTO, model_p);
}

dlrm_status_t dlrm_model_load_held(const dlrm_config_t *cfg, const char *path, const int *tables,
                                   int n_tables, dlrm_hold_t hold, dlrm_model_t **model_p)
{
    if (!cfg || !path || !model_p || !cfg->rows || cfg->n_tables < 1)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_model_load: cfg, path and model_p are required");
    if (hold != DLRM_HOLD_AUTO && hold != DLRM_HOLD_COPY && hold != DLRM_HOLD_MAP)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_model_load_held: unknown hold %d", (int)hold);
    unsigned char *want = malloc((size_t)cfg->n_tables);
    unsigned char *own = calloc((size_t)cfg->n_tables, 1);
    if (!want || !own) {
        free(want);
        free(own);
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    }
    size_t data_at = 0, data_len = 0;
    cJSON *hdr = NULL;
    dlrm_model_t *m = NULL;
    int fd = -1;
    void *map = MAP_FAILED;
    size_t map_len = 0;
    dlrm_status_t st = dlrm_table_set(cfg, tables, n_tables, want);
    if (st == DLRM_OK && (fd = open(path, O_RDONLY | O_NONBLOCK)) < 0)
        st = dlrm_error(DLRM_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == DLRM_OK)
        st = read_header(fd, path, &hdr, &data_at, &data_len);
    if (st == DLRM_OK)
        st = check_header(hdr, path, data_len);
    uint64_t avail = st == DLRM_OK ? mem_available() : 0, need = 0, at = 0;
    int unaligned = st == DLRM_OK ? unaligned_table(cfg, hdr, data_at, want, &at) : -1;
    if (st == DLRM_OK)
        need = wanted_table_bytes(cfg, want);
    if (st == DLRM_OK && hold == DLRM_HOLD_AUTO)
        /* Copy unless the tables would take more than half of what the kernel says is
         * available (other processes of the host load theirs too), or memory is unknown. */
        hold = avail && need > avail / 2 && unaligned < 0 ? DLRM_HOLD_MAP : DLRM_HOLD_COPY;
    if (st == DLRM_OK && hold == DLRM_HOLD_MAP && unaligned >= 0)
        st = dlrm_error(DLRM_ERR_FORMAT,
                        "%s: tensor 'emb_l.%d.weight' starts at byte %llu of the file, not a "
                        "multiple of 4: it cannot be mapped (load it as a copy)",
                        path, unaligned, (unsigned long long)at);
    if (hold == DLRM_HOLD_COPY)
        memcpy(own, want, (size_t)cfg->n_tables);
    if (st == DLRM_OK && hold == DLRM_HOLD_MAP) {
        map_len = data_at + data_len;
        map = mmap(NULL, map_len, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
            st = dlrm_error(DLRM_ERR_IO, "%s: cannot map %zu MiB: %s", path, map_len >> 20,
                            strerror(errno));
        else if (avail && need <= avail)
            (void)madvise(map, map_len, MADV_WILLNEED); /* it fits: read ahead now */
        else
            (void)madvise(map, map_len, MADV_RANDOM); /* it does not: fetch only what is hit */
    }
    if (st == DLRM_OK)
        st = dlrm_model_alloc(cfg, &m);
    if (st == DLRM_OK)
        st = dlrm_model_own(m, own);
    if (st == DLRM_OK && map != MAP_FAILED) {
        m->file_map = map; /* dlrm_model_free unmaps it from here on */
        m->file_map_len = map_len;
        map = MAP_FAILED;
    }
    if (st == DLRM_OK)
        st = load_tensors(m, hdr, path, fd, data_at, data_len, want,
                          hold == DLRM_HOLD_MAP ? m->file_map : NULL);
    if (st == DLRM_OK)
        st = dlrm_model_prepare(m);
    if (map != MAP_FAILED)
        munmap(map, map_len);
    if (fd >= 0)
        close(fd);
    cJSON_Delete(hdr);
    free(want);
    free(own);
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
    /* A temporary file beside the target, renamed over it when complete: a job loading the
     * old file meanwhile reads the old inode to its end. */
    dlrm_status_t st = DLRM_OK;
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    FILE *f = NULL;
    if (!tmp) {
        st = dlrm_error(DLRM_ERR_NOMEM, "dlrm_model_save: out of memory");
    } else {
        snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
        if (!(f = fopen(tmp, "wb")))
            st = dlrm_error(DLRM_ERR_IO, "%s: cannot write it (through %s): %s", path, tmp,
                            strerror(errno));
    }
    if (f) {
        int ok = write_file(f, json, refs, collect_refs(m, refs));
        if (fclose(f) != 0 || !ok)
            st = dlrm_error(DLRM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            st = dlrm_error(DLRM_ERR_IO, "%s: cannot rename %s to it: %s", path, tmp,
                            strerror(errno));
        if (st != DLRM_OK)
            unlink(tmp);
    }
    free(tmp);
    free(json);
    free(refs);
    return st;
}
