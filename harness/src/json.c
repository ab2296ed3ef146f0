/*
 * JSON files (harness.h): the document is a cJSON tree, so every string is escaped by cJSON;
 * this file only lays it out the way people and line tools read it: one member per line,
 * "key": value, arrays of plain values on one line.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *harness_json_numbers(const double *x, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) /* JSON has no NaN or infinity: those become null */
        cJSON_AddItemToArray(a, isfinite(x[i]) ? cJSON_CreateNumber(x[i]) : cJSON_CreateNull());
    return a;
}

/* The shortest of %.15g .. %.17g that reads back as x; integers without a fraction. */
static void put_number(FILE *f, double x)
{
    if (!isfinite(x)) {
        fputs("null", f);
        return;
    }
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof(buf), "%.*g", digits, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    fputs(buf, f);
}

static int plain(const cJSON *item)
{
    return !cJSON_IsArray(item) && !cJSON_IsObject(item);
}

static int put_value(FILE *f, const cJSON *item, int depth);

/* A string as cJSON escapes it. */
static int put_string(FILE *f, const char *s)
{
    cJSON *tmp = cJSON_CreateString(s ? s : "");
    char *text = tmp ? cJSON_PrintUnformatted(tmp) : NULL;
    int ok = text && fputs(text, f) >= 0;
    free(text);
    cJSON_Delete(tmp);
    return ok;
}

static int put_container(FILE *f, const cJSON *item, int depth)
{
    int obj = cJSON_IsObject(item), inline_ = !obj, ok = 1;
    for (const cJSON *c = item->child; c && inline_; c = c->next)
        inline_ = plain(c);
    fputc(obj ? '{' : '[', f);
    for (const cJSON *c = item->child; c && ok; c = c->next) {
        if (c != item->child)
            fputs(inline_ ? ", " : ",", f);
        if (!inline_)
            fprintf(f, "\n%*s", 2 * (depth + 1), "");
        if (obj) {
            ok = put_string(f, c->string);
            fputs(": ", f);
        }
        ok = ok && put_value(f, c, depth + 1);
    }
    if (!inline_ && item->child)
        fprintf(f, "\n%*s", 2 * depth, "");
    fputc(obj ? '}' : ']', f);
    return ok;
}

static int put_value(FILE *f, const cJSON *item, int depth)
{
    if (cJSON_IsObject(item) || cJSON_IsArray(item))
        return put_container(f, item, depth);
    if (cJSON_IsString(item))
        return put_string(f, item->valuestring);
    if (cJSON_IsNumber(item))
        put_number(f, item->valuedouble);
    else if (cJSON_IsBool(item))
        fputs(cJSON_IsTrue(item) ? "true" : "false", f);
    else
        fputs("null", f);
    return 1;
}

int harness_json_write(const cJSON *root, const char *path, char *err, size_t errlen)
{
    if (!root) {
        snprintf(err, errlen, "%s: out of memory for the JSON document", path);
        return -1;
    }
    FILE *f = fopen(path, "w");
    int ok = f && put_value(f, root, 0) && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        snprintf(err, errlen, "cannot write %s: %s", path, errno ? strerror(errno) : "error");
    return ok ? 0 : -1;
}
