/* Prints what the GGUF reader (engine/model/gguf.h) makes of a file, as JSON, through the API the
 * engine and the tokenizer glue use: every key by its typed getter (integers and floats as exact
 * decimal strings), every array element (string arrays through gguf_array_str), every tensor's
 * type, dims, absolute file offset, size and a position-weighted sum of its data bytes. compare_gguf_dump.py
 * checks it against tools/gguf_write.py's independent Python reader.
 *   gguf_dump FILE.gguf */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine/model/gguf.h"

static void put_str(const char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') putchar(c);
        else printf("\\u%04x", c); /* one code point per byte: the reader hands out bytes */
    }
    putchar('"');
}

static void put_scalar(const struct gguf_file *g, const char *key, int t)
{
    struct ms_err err;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
        bool b;
    } v;
    struct gguf_str s;
    int rc = 0;
    switch (t) {
    case GGUF_TYPE_UINT8: rc = gguf_get_u8(g, key, &v.u8, &err); printf("\"%u\"", v.u8); break;
    case GGUF_TYPE_INT8: rc = gguf_get_i8(g, key, &v.i8, &err); printf("\"%d\"", v.i8); break;
    case GGUF_TYPE_UINT16: rc = gguf_get_u16(g, key, &v.u16, &err); printf("\"%u\"", v.u16); break;
    case GGUF_TYPE_INT16: rc = gguf_get_i16(g, key, &v.i16, &err); printf("\"%d\"", v.i16); break;
    case GGUF_TYPE_UINT32: rc = gguf_get_u32(g, key, &v.u32, &err); printf("\"%" PRIu32 "\"", v.u32); break;
    case GGUF_TYPE_INT32: rc = gguf_get_i32(g, key, &v.i32, &err); printf("\"%" PRId32 "\"", v.i32); break;
    case GGUF_TYPE_UINT64: rc = gguf_get_u64(g, key, &v.u64, &err); printf("\"%" PRIu64 "\"", v.u64); break;
    case GGUF_TYPE_INT64: rc = gguf_get_i64(g, key, &v.i64, &err); printf("\"%" PRId64 "\"", v.i64); break;
    case GGUF_TYPE_FLOAT32: rc = gguf_get_f32(g, key, &v.f32, &err); printf("\"%.9g\"", v.f32); break;
    case GGUF_TYPE_FLOAT64: rc = gguf_get_f64(g, key, &v.f64, &err); printf("\"%.17g\"", v.f64); break;
    case GGUF_TYPE_BOOL: rc = gguf_get_bool(g, key, &v.b, &err); printf(v.b ? "true" : "false"); break;
    case GGUF_TYPE_STRING: rc = gguf_get_str(g, key, &s, &err); put_str(s.ptr, s.len); break;
    default: printf("null");
    }
    if (rc) fprintf(stderr, "gguf_dump: %s\n", err.msg);
}

static void put_array(const struct gguf_file *g, const char *key)
{
    struct ms_err err;
    struct gguf_array a;
    if (gguf_get_array(g, key, &a, &err)) {
        fprintf(stderr, "gguf_dump: %s\n", err.msg);
        return;
    }
    printf("{\"elem\": %d, \"items\": [", (int)a.type);
    for (uint64_t i = 0; i < a.n; i++) {
        if (i) putchar(',');
        if (a.type == GGUF_TYPE_STRING) {
            struct gguf_str s = gguf_array_str(&a, i);
            put_str(s.ptr, s.len);
        } else if (a.type == GGUF_TYPE_FLOAT32) {
            printf("\"%.9g\"", gguf_array_float(&a, i));
        } else if (a.type == GGUF_TYPE_FLOAT64) {
            printf("\"%.17g\"", gguf_array_float(&a, i));
        } else if (a.type == GGUF_TYPE_UINT64) {
            int64_t v = gguf_array_int(&a, i); /* INT64_MAX marks a value above it */
            printf("\"%" PRId64 "\"", v);
        } else {
            printf("\"%" PRId64 "\"", gguf_array_int(&a, i));
        }
    }
    printf("]}");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_dump FILE.gguf\n");
        return 2;
    }
    struct gguf_file *g;
    struct ms_err err;
    if (gguf_open(argv[1], &g, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("{\"version\": %u, \"alignment\": %u, \"parts\": %d, \"kv\": {", gguf_version(g), gguf_alignment(g),
           gguf_n_parts(g));
    for (int i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_key_at(g, i);
        int t = gguf_key_type(g, key);
        printf("%s\n", i ? "," : "");
        put_str(key, strlen(key));
        printf(": {\"type\": %d, \"value\": ", t);
        if (t == GGUF_TYPE_ARRAY) put_array(g, key);
        else put_scalar(g, key, t);
        putchar('}');
    }
    printf("}, \"tensors\": {");
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        const char *path;
        gguf_part(g, t->part, NULL, NULL, &path);
        uint64_t h = 0; /* position-weighted byte sum: cheap for numpy to recompute */
        for (size_t k = 0; k < t->nbytes; k++) h += (uint64_t)((const uint8_t *)t->data)[k] * (k % 251 + 1);
        printf("%s\n", i ? "," : "");
        put_str(t->name, strlen(t->name));
        printf(": {\"type\": %u, \"type_name\": \"%s\", \"ne\": [", t->type, t->type_name);
        for (int d = 0; d < t->n_dims; d++) printf(d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
        printf("], \"offset\": %" PRIu64 ", \"nbytes\": %zu, \"sum\": \"%" PRIu64 "\", \"part\": ", t->file_offset,
               t->nbytes, h);
        put_str(path, strlen(path));
        printf(", \"found\": %s}", gguf_find_tensor(g, t->name) == t ? "true" : "false");
    }
    printf("}}\n");
    gguf_close(g);
    return 0;
}
