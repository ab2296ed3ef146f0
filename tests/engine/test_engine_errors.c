/*
 * The engine's answers to bad input: configuration strings, damaged weights files, indices
 * outside a table.  Each check asserts the status and the words of the message that name what
 * and where.  Also: a process building only some tables gets exactly the full model's bytes.
 * Usage: test_engine_errors SCRATCH_DIR
 */
#include "dlrm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define EXPECT(expr, code, needle)                                                               \
    do {                                                                                         \
        dlrm_status_t s_ = (expr);                                                               \
        CHECK(s_ == (code), "%s returned %s, expected %s (%s)", #expr, dlrm_strerror(s_),       \
              dlrm_strerror(code), dlrm_last_error());                                          \
        CHECK(strstr(dlrm_last_error(), (needle)) != NULL, "%s: message '%s' lacks '%s'", #expr,\
              dlrm_last_error(), (needle));                                                     \
    } while (0)

static char dir[1024];

static const char *file(const char *name)
{
    static char paths[4][2048]; /* several calls may appear in one expression */
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 2048, "%s/%s", dir, name);
    return path;
}

/* Copies the first n bytes of src to dst (n < 0: all but -n - 1 bytes, so -1 is all), then
 * applies an optional patch. */
static void copy_file(const char *src, const char *dst, long n, long patch_at, const char *patch)
{
    FILE *in = fopen(src, "rb");
    fseek(in, 0, SEEK_END);
    long len = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)len);
    if (fread(buf, 1, (size_t)len, in) != (size_t)len)
        abort();
    fclose(in);
    if (patch)
        memcpy(buf + patch_at, patch, strlen(patch));
    FILE *out = fopen(dst, "wb");
    fwrite(buf, 1, (size_t)(n < 0 ? len + n + 1 : n), out);
    fclose(out);
    free(buf);
}

static void test_config(void)
{
    dlrm_config_t c;
    EXPECT(dlrm_config_parse("13-64-8", "32-1", "10-20", 16, "dot", 0, &c), DLRM_ERR_ARG,
           "ends with width 8, but the embedding dimension (--arch-sparse-feature-size) is 16");
    EXPECT(dlrm_config_parse("13-64-16", "32-2", "10-20", 16, "dot", 0, &c), DLRM_ERR_ARG,
           "--arch-mlp-top '32-2' ends with width 2");
    EXPECT(dlrm_config_parse("13-x-16", "32-1", "10-20", 16, "dot", 0, &c), DLRM_ERR_ARG,
           "--arch-mlp-bot '13-x-16': entry 2 is not a positive integer");
    EXPECT(dlrm_config_parse("13-64-16", "32-1", "10-0-5", 16, "dot", 0, &c), DLRM_ERR_ARG,
           "--arch-embedding-size '10-0-5': entry 2");
    EXPECT(dlrm_config_parse("13-64-16", "32-1", "", 16, "dot", 0, &c), DLRM_ERR_ARG,
           "--arch-embedding-size is empty");
    EXPECT(dlrm_config_parse("13-64-16", "32-1", "10-20", 16, "sum", 0, &c), DLRM_ERR_ARG,
           "--arch-interaction-op 'sum'");
    EXPECT(dlrm_config_parse("16", "32-1", "10-20", 16, "dot", 0, &c), DLRM_ERR_ARG,
           "needs an input and at least one layer");
    /* Widths derived as the reference does. */
    CHECK(dlrm_config_parse("13-512-256-64-16", "512-256-1", "1-2-3-4-5-6-7-8-9-10-11-12-13-14-15"
                            "-16-17-18-19-20-21-22-23-24-25-26", 16, "dot", 0, &c) == DLRM_OK,
          "Kaggle architecture rejected: %s", dlrm_last_error());
    CHECK(c.top[0] == 16 + 27 * 26 / 2, "dot width %d, expected 367", c.top[0]);
    dlrm_config_free(&c);
    CHECK(dlrm_config_parse("4-8", "2-1", "5-5-5", 8, "dot", 1, &c) == DLRM_OK, "itself");
    CHECK(c.top[0] == 8 + 4 * 5 / 2, "dot-itself width %d, expected 18", c.top[0]);
    dlrm_config_free(&c);
    CHECK(dlrm_config_parse("4-8", "2-1", "5-5-5", 8, "cat", 0, &c) == DLRM_OK, "cat");
    CHECK(c.top[0] == 32, "cat width %d, expected 32", c.top[0]);
    dlrm_config_free(&c);
}

/* A safetensors file of the given JSON header (padded to 8 bytes) and data_len zero bytes. */
static void write_safetensors(const char *path, const char *header, size_t data_len)
{
    size_t hlen = (strlen(header) + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(hlen >> (8 * i));
    FILE *f = fopen(path, "wb");
    fwrite(len8, 1, 8, f);
    fprintf(f, "%-*s", (int)hlen, header);
    for (size_t i = 0; i < data_len; i++)
        fputc(0, f);
    fclose(f);
}

/* Offsets and shapes from a hostile header: never converted unchecked (offsets near 2^64 once
 * passed the bounds check and read outside the file). */
static void test_hostile_header(const dlrm_config_t *c)
{
    const char *whole = "not whole numbers [begin, end], 0 <= begin <= end <= 2^53";
    const char *cases[][2] = {
        {"[18446744073709551488, 18446744073709551616]", whole},
        {"[-128, 0]", whole},
        {"[0.5, 128.5]", whole},
        {"[1e300, 1e300]", whole},
        {"[128, 64]", whole},
        {"[0, 256]", "ends at byte 256, past the data section's 128 bytes (truncated file?)"},
        {"[0, 64]", "has data_offsets [0, 64] but needs 128 bytes"},
    };
    dlrm_model_t *l;
    char header[256];
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        snprintf(header, sizeof(header),
                 "{\"bot_l.0.weight\": {\"dtype\": \"F32\", \"shape\": [8, 4], \"data_offsets\": %s}}",
                 cases[k][0]);
        write_safetensors(file("hostile.safetensors"), header, 128);
        EXPECT(dlrm_model_load(c, file("hostile.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
               cases[k][1]);
    }
    write_safetensors(file("hostile.safetensors"),
                      "{\"bot_l.0.weight\": {\"dtype\": \"F32\", \"shape\": [8.5, 4], "
                      "\"data_offsets\": [0, 128]}}",
                      128);
    EXPECT(dlrm_model_load(c, file("hostile.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "tensor 'bot_l.0.weight' has shape [-1, 4], the model needs [8, 4]");
    write_safetensors(file("hostile.safetensors"),
                      "{\"bot_l.0.weight\": {\"dtype\": \"F32\", \"shape\": [8, 4], "
                      "\"data_offsets\": [0, 128]}, \"bot_l.0.weight\": {\"dtype\": \"F32\", "
                      "\"shape\": [8, 4], \"data_offsets\": [128, 256]}}",
                      256);
    EXPECT(dlrm_model_load(c, file("hostile.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "tensor 'bot_l.0.weight' appears twice in the header");
    write_safetensors(file("hostile.safetensors"),
                      "{\"bot_l.0.weight\": {\"dtype\": \"F32\", \"shape\": [8, 4], "
                      "\"data_offsets\": [0, 128]}, \"bot_l.0.bias\": {\"dtype\": \"F32\", "
                      "\"shape\": [8], \"data_offsets\": [96, 128]}}",
                      128);
    EXPECT(dlrm_model_load(c, file("hostile.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "tensors 'bot_l.0.weight' and 'bot_l.0.bias' overlap in the file");
    /* A tensor name that is not UTF-8 (Latin-1 e-acute, then an overlong '/'). */
    write_safetensors(file("hostile.safetensors"),
                      "{\"bot_l.0.weight\": {\"dtype\": \"F32\", \"shape\": [8, 4], "
                      "\"data_offsets\": [0, 128]}, \"caf\xe9\": {}}",
                      128);
    EXPECT(dlrm_model_load(c, file("hostile.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "the header is not UTF-8 (byte 84 of it)");
    write_safetensors(file("hostile.safetensors"), "{\"\xc0\xaf\": {}}", 0);
    EXPECT(dlrm_model_load(c, file("hostile.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "the header is not UTF-8 (byte 2 of it)");
    /* Not a regular file: named, never a blocked read. */
    EXPECT(dlrm_model_load(c, dir, NULL, 0, &l), DLRM_ERR_FORMAT, "not a regular file");
}

/* The tables mapped from the file (DLRM_HOLD_MAP) or copied (COPY, and AUTO with memory to
 * spare): the same numbers either way; a table the file places off a 4-byte boundary cannot be
 * mapped (AUTO then copies). */
static void test_weights_held(const dlrm_config_t *c, const dlrm_model_t *m)
{
    dlrm_hold_t holds[] = {DLRM_HOLD_MAP, DLRM_HOLD_COPY, DLRM_HOLD_AUTO};
    dlrm_hold_t want[] = {DLRM_HOLD_MAP, DLRM_HOLD_COPY, DLRM_HOLD_COPY};
    int only_one[] = {1};
    for (int k = 0; k < 3; k++) {
        dlrm_model_t *l = NULL;
        CHECK(dlrm_model_load_held(c, file("good.safetensors"), only_one, 1, holds[k], &l) ==
                  DLRM_OK,
              "load held %d: %s", (int)holds[k], dlrm_last_error());
        if (!l)
            continue;
        CHECK(dlrm_model_hold(l) == want[k], "hold %d: held as %d, expected %d", (int)holds[k],
              (int)dlrm_model_hold(l), (int)want[k]);
        CHECK(dlrm_model_table(l, 0) == NULL && dlrm_model_table(l, 2) == NULL,
              "hold %d: tables 0 and 2 are not this process's", (int)holds[k]);
        CHECK(memcmp(dlrm_model_table(m, 1), dlrm_model_table(l, 1), sizeof(float) * 8 * 20) == 0,
              "hold %d: table 1 differs from the model saved", (int)holds[k]);
        size_t bytes = 0, huge = 0;
        CHECK(dlrm_model_memory(l, &bytes, &huge) == DLRM_OK && bytes >= sizeof(float) * 8 * 20,
              "hold %d: the memory counted (%zu bytes) leaves out table 1", (int)holds[k], bytes);
        dlrm_model_free(l);
    }
    dlrm_model_t *l = NULL;
    EXPECT(dlrm_model_load_held(c, file("good.safetensors"), NULL, 0, (dlrm_hold_t)7, &l),
           DLRM_ERR_ARG, "unknown hold 7");
    /* Two more bytes of header (spaces after the JSON): every tensor starts 2 bytes off. */
    FILE *in = fopen(file("good.safetensors"), "rb"), *out = fopen(file("odd.safetensors"), "wb");
    unsigned char len8[8];
    CHECK(in && out && fread(len8, 1, 8, in) == 8, "cannot copy good.safetensors");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | len8[i];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((hlen + 2) >> (8 * i));
    fwrite(len8, 1, 8, out);
    for (uint64_t i = 0; i < hlen; i++)
        fputc(fgetc(in), out);
    fputs("  ", out);
    for (int ch; (ch = fgetc(in)) != EOF;)
        fputc(ch, out);
    fclose(in);
    fclose(out);
    EXPECT(dlrm_model_load_held(c, file("odd.safetensors"), NULL, 0, DLRM_HOLD_MAP, &l),
           DLRM_ERR_FORMAT, "tensor 'emb_l.0.weight' starts at byte");
    CHECK(dlrm_model_load_held(c, file("odd.safetensors"), NULL, 0, DLRM_HOLD_COPY, &l) == DLRM_OK,
          "an unaligned file loads as a copy: %s", dlrm_last_error());
    if (l)
        CHECK(memcmp(dlrm_model_table(m, 2), dlrm_model_table(l, 2), sizeof(float) * 8 * 30) == 0,
              "the unaligned file's table 2 differs");
    dlrm_model_free(l);
}

static void test_weights(void)
{
    dlrm_config_t c, wider, more;
    dlrm_config_parse("4-8", "6-1", "10-20-30", 8, "dot", 0, &c);
    dlrm_config_parse("4-8", "6-1", "10-21-30", 8, "dot", 0, &wider);
    dlrm_config_parse("4-8", "6-1", "10-20-30-40", 8, "dot", 0, &more);
    dlrm_model_t *m, *l;
    CHECK(dlrm_model_init_random(&c, 3, NULL, 0, &m) == DLRM_OK, "init");
    CHECK(dlrm_model_save(m, file("good.safetensors")) == DLRM_OK, "save: %s", dlrm_last_error());
    CHECK(dlrm_model_load(&c, file("good.safetensors"), NULL, 0, &l) == DLRM_OK, "load: %s",
          dlrm_last_error());
    for (int t = 0; t < 3; t++)
        CHECK(memcmp(dlrm_model_table(m, t), dlrm_model_table(l, t), sizeof(float) * 8 * (size_t)c.rows[t]) == 0,
              "table %d differs after save and load", t);
    dlrm_model_free(l);
    test_weights_held(&c, m);

    EXPECT(dlrm_model_load(&wider, file("good.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "tensor 'emb_l.1.weight' has shape [20, 8], the model needs [21, 8]");
    /* A fourth table also widens the top MLP's input: the first tensor that disagrees is named. */
    EXPECT(dlrm_model_load(&more, file("good.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "tensor 'top_l.0.weight' has shape [6, 14], the model needs [6, 18]");
    EXPECT(dlrm_model_load(&c, file("absent.safetensors"), NULL, 0, &l), DLRM_ERR_IO,
           "No such file");
    copy_file(file("good.safetensors"), file("short.safetensors"), -101, 0, NULL); /* data cut */
    EXPECT(dlrm_model_load(&c, file("short.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "(truncated file?)");
    copy_file(file("good.safetensors"), file("hugeheader.safetensors"), -1, 0, "\xff\xff\xff\x7f");
    EXPECT(dlrm_model_load(&c, file("hugeheader.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "header length");
    copy_file(file("good.safetensors"), file("notjson.safetensors"), -1, 8, "#");
    EXPECT(dlrm_model_load(&c, file("notjson.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
           "the header is not a JSON object");
    /* A tensor renamed in the header (same length): the model's name is missing. */
    char *q = NULL;
    FILE *f = fopen(file("good.safetensors"), "rb");
    char head[4096];
    size_t got = fread(head, 1, sizeof(head) - 1, f);
    fclose(f);
    head[got] = '\0';
    q = strstr(head + 8, "emb_l.2.weight");
    CHECK(q != NULL, "no emb_l.2.weight in the header");
    if (q) {
        copy_file(file("good.safetensors"), file("renamed.safetensors"), -1, (long)(q - head),
                  "emb_l.9.weight");
        EXPECT(dlrm_model_load(&c, file("renamed.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
               "tensor 'emb_l.2.weight' is missing");
    }
    /* Same length, other dtype: "F32" -> "F16" in the first tensor. */
    char *p = strstr(head + 8, "\"F32\"");
    CHECK(p != NULL, "no F32 in the header");
    if (p) {
        copy_file(file("good.safetensors"), file("f16.safetensors"), -1, (long)(p - head), "\"F16\"");
        EXPECT(dlrm_model_load(&c, file("f16.safetensors"), NULL, 0, &l), DLRM_ERR_FORMAT,
               "has dtype F16, expected F32");
    }
    test_hostile_header(&c);
    /* Rows x d x 4 past size_t: refused before any read, as random initialisation refuses it
     * (loading once computed the size unchecked). */
    dlrm_config_t huge;
    if (dlrm_config_parse("4-8", "6-1", "2305843009213693952-20-30", 8, "dot", 0, &huge) == DLRM_OK) {
        EXPECT(dlrm_model_load(&huge, file("good.safetensors"), NULL, 0, &l), DLRM_ERR_ARG,
               "table 0: 2305843009213693952 rows x 8 do not fit in memory");
        dlrm_config_free(&huge);
    } else {
        CHECK(0, "a configuration of 2^61 rows: %s", dlrm_last_error());
    }
    dlrm_model_free(m);
    dlrm_config_free(&c);
    dlrm_config_free(&wider);
    dlrm_config_free(&more);
}

static void test_indices_and_subsets(void)
{
    dlrm_config_t c;
    dlrm_config_parse("4-8", "6-1", "10-20-30", 8, "dot", 0, &c);
    dlrm_model_t *full, *part;
    dlrm_model_init_random(&c, 11, NULL, 0, &full);
    int only1[] = {1}, two_and_zero[] = {2, 0}, bad[] = {2, 5}, twice[] = {1, 0, 1};
    CHECK(dlrm_model_init_random(&c, 11, only1, 1, &part) == DLRM_OK, "subset init");
    CHECK(dlrm_model_table(part, 0) == NULL && dlrm_model_table(part, 2) == NULL,
          "tables outside the subset exist");
    CHECK(memcmp(dlrm_model_table(full, 1), dlrm_model_table(part, 1), sizeof(float) * 20 * 8) == 0,
          "table 1 built alone differs from the full model's");
    dlrm_model_t *gap;
    CHECK(dlrm_model_init_random(&c, 11, two_and_zero, 2, &gap) == DLRM_OK, "tables {2, 0}");
    CHECK(dlrm_model_table(gap, 1) == NULL &&
          memcmp(dlrm_model_table(full, 0), dlrm_model_table(gap, 0), sizeof(float) * 10 * 8) == 0 &&
          memcmp(dlrm_model_table(full, 2), dlrm_model_table(gap, 2), sizeof(float) * 30 * 8) == 0,
          "tables {2, 0} differ from the full model's");
    EXPECT(dlrm_model_init_random(&c, 11, bad, 2, &gap), DLRM_ERR_ARG,
           "table list entry 1: table 5 is not within the model's 3 tables");
    EXPECT(dlrm_model_init_random(&c, 11, twice, 3, &gap), DLRM_ERR_ARG,
           "table list entry 2: table 1 is listed twice");

    float dense[2 * 4] = {0}, out[2 * 3 * 8];
    int64_t i0[] = {0, 9}, i1[] = {3, 20}, i2[] = {-1};
    int64_t o0[] = {0, 1, 2}, o1[] = {0, 2, 2}, o2[] = {0, 0, 1};
    const int64_t *idx[] = {i0, i1, i2}, *off[] = {o0, o1, o2};
    dlrm_batch_t b = {2, dense, idx, off, NULL};
    int t01[] = {0, 1}, t2[] = {2}, t10[] = {1, 0};
    EXPECT(dlrm_embed(full, &b, t01, 2, out), DLRM_ERR_RANGE,
           "table 1, sample 0: index 20 is outside [0, 20)");
    EXPECT(dlrm_embed(full, &b, t2, 1, out), DLRM_ERR_RANGE,
           "table 2, sample 1: index -1 is outside [0, 30)");
    EXPECT(dlrm_embed(full, &b, bad, 2, out), DLRM_ERR_ARG, "table list entry 1: table 5");
    i1[1] = 19;
    float rev[2 * 2 * 8];
    CHECK(dlrm_embed(full, &b, t10, 2, rev) == DLRM_OK, "tables {1, 0}: %s", dlrm_last_error());
    CHECK(dlrm_embed(full, &b, t01, 2, out) == DLRM_OK, "valid indices: %s", dlrm_last_error());
    int swapped = 1; /* out is [b][table in list order][8] */
    for (int s = 0; s < 2; s++)
        for (int j = 0; j < 8; j++)
            swapped &= rev[(s * 2 + 0) * 8 + j] == out[(s * 2 + 1) * 8 + j] &&
                       rev[(s * 2 + 1) * 8 + j] == out[(s * 2 + 0) * 8 + j];
    CHECK(swapped, "pooled vectors of tables {1, 0} are not those of {0, 1} swapped");
    /* Sample 1 of table 1 is an empty bag: zeros. */
    int zero = 1;
    for (int j = 0; j < 8; j++)
        zero &= out[(1 * 2 + 1) * 8 + j] == 0.0f;
    CHECK(zero, "an empty bag did not pool to zeros");
    EXPECT(dlrm_embed(part, &b, t01, 2, out), DLRM_ERR_ARG, "table 0 is not held");
    dlrm_model_free(gap);
    dlrm_model_free(part);
    dlrm_model_free(full);
    dlrm_config_free(&c);
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof(dir), "%s", argc > 1 ? argv[1] : "/tmp");
    test_config();
    test_weights();
    test_indices_and_subsets();
    printf("test_engine_errors: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
