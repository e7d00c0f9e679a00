/* libFuzzer harness (e): the GGUF reader on arbitrary bytes (a GGUF comes from the internet).
 *
 * Input: a whole file, parsed in memory by gguf_open_memory (the same checks as a mapped file).
 * Checks: no crash, no leak, no read outside the input (ASan: the input is an exact-size copy);
 * an error leaves a one-line message naming the input; a file that parses hands out only what
 * lies inside it: every key's value is read through the typed and lenient getters, every element
 * of every array (string elements touched end to end), every tensor's first and last data byte
 * inside [data, data + size) with nbytes matching its dims, and the model configuration is read
 * from it (gguf_config_read: any result, a message when it refuses). */
#include <stdint.h>
#include <string.h>

#include "engine/model/gguf.h"
#include "engine/model/gguf_config.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned fuzz_sink;

static void touch(const void *p, size_t n, const uint8_t *base, size_t size)
{
    const uint8_t *b = p;
    FUZZ_CHECK(n == 0 || (b >= base && b + n <= base + size), "range [%p, +%zu) outside the input", p, n);
    if (n) fuzz_sink += b[0] + b[n - 1];
}

static void check_kv(const struct gguf_file *g, const char *key, const uint8_t *base, size_t size)
{
    struct ms_err err;
    int t = gguf_key_type(g, key);
    FUZZ_CHECK(t >= 0 && t < GGUF_TYPE_COUNT, "key type %d", t);
    int64_t i;
    double d;
    bool int_ok = gguf_get_int(g, key, &i, &err) == MS_OK, float_ok = gguf_get_float(g, key, &d, &err) == MS_OK;
    FUZZ_CHECK(!(int_ok && float_ok), "a key is both an integer and a float");
    if (t == GGUF_TYPE_STRING) {
        struct gguf_str s;
        FUZZ_CHECK(gguf_get_str(g, key, &s, &err) == MS_OK, "string getter failed: %s", err.msg);
        touch(s.ptr, s.len, base, size);
        FUZZ_CHECK(gguf_get_u32(g, key, &(uint32_t){0}, &err) != MS_OK && strstr(err.msg, key), "type mismatch not refused");
    }
    if (t != GGUF_TYPE_ARRAY) return;
    struct gguf_array a;
    FUZZ_CHECK(gguf_get_array(g, key, &a, &err) == MS_OK, "array getter failed: %s", err.msg);
    for (uint64_t k = 0; k < a.n; k++) {
        if (a.type == GGUF_TYPE_STRING) {
            struct gguf_str s = gguf_array_str(&a, k);
            touch(s.ptr, s.len, base, size);
        } else if (a.type == GGUF_TYPE_FLOAT32 || a.type == GGUF_TYPE_FLOAT64) {
            fuzz_sink += (unsigned)(gguf_array_float(&a, k) != 0);
        } else {
            fuzz_sink += (unsigned)gguf_array_int(&a, k);
        }
    }
}

static void check_tensor(const struct gguf_tensor *t, const uint8_t *base, size_t size)
{
    int bv;
    size_t bb;
    FUZZ_CHECK(gguf_type_block(t->type, &bv, &bb), "tensor %s of unknown type %u", t->name, t->type);
    FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS, "n_dims %d", t->n_dims);
    size_t n = (size_t)(t->ne[0] / bv) * bb;
    for (int d = 1; d < GGUF_MAX_DIMS; d++) n *= (size_t)t->ne[d];
    FUZZ_CHECK(n == t->nbytes, "tensor %s: %zu bytes by its dims, %zu by the reader", t->name, n, t->nbytes);
    touch(t->data, t->nbytes, base, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file *g;
    struct ms_err err = {{0}};
    if (gguf_open_memory(data, size, "fuzz.gguf", &g, &err) != MS_OK) {
        FUZZ_CHECK(strstr(err.msg, "fuzz.gguf") || strstr(err.msg, "out of memory"), "message names no file: %s", err.msg);
        FUZZ_CHECK(!strchr(err.msg, '\n'), "message has several lines: %s", err.msg);
        return 0;
    }
    for (int i = 0; i < gguf_n_kv(g); i++) {
        const char *key = gguf_key_at(g, i);
        FUZZ_CHECK(gguf_has(g, key), "key %s not found by name", key);
        check_kv(g, key, data, size);
    }
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        FUZZ_CHECK(gguf_find_tensor(g, t->name) == t, "tensor %s not found by name", t->name);
        check_tensor(t, data, size);
    }
    struct model_config cfg;
    if (gguf_config_read(g, &cfg, &err) != MS_OK)
        FUZZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "config refusal without a one-line message");
    gguf_close(g);
    return 0;
}
