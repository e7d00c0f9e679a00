/* The GGUF writer (engine/model/gguf_writer.h): `test_gguf_writer OUT.gguf` writes a file with
 * a KV of every value type, arrays of numbers and strings, alignment 64 and three tensors
 * (tests/quantize/check_gguf_writer.py reads it back with tools/gguf_write.py's independent
 * reader); it also checks the error paths here, each leaving no file behind. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/gguf_writer.h"
#include "tests/testhelp.h"

/* a step the rest depends on */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        int ok_ = (cond);                                                                          \
        test_cond(#cond, ok_);                                                                     \
        if (!ok_) return;                                                                          \
    } while (0)

static int write_all_types(const char *path)
{
    struct ms_err err = {{0}};
    struct gguf_w *w;
    if (gguf_w_open(path, true, &w, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    uint64_t u64 = 18000000000000000000ull;
    int64_t i64 = -9000000000000000000ll;
    double f64 = 3.141592653589793;
    int32_t arr_i32[3] = {1, -2, 3};
    float arr_f32[2] = {0.5f, -1.25f};
    uint8_t arr_bool[3] = {1, 0, 1};
    const char *strs[3] = {"a", "", "ĠHello"};
    int rc = gguf_w_kv_u32(w, "general.alignment", 64, &err);
    if (!rc) rc = gguf_w_kv(w, "t.u8", GGUF_W_UINT8, &u8, &err);
    if (!rc) rc = gguf_w_kv(w, "t.i8", GGUF_W_INT8, &i8, &err);
    if (!rc) rc = gguf_w_kv(w, "t.u16", GGUF_W_UINT16, &u16, &err);
    if (!rc) rc = gguf_w_kv(w, "t.i16", GGUF_W_INT16, &i16, &err);
    if (!rc) rc = gguf_w_kv_u32(w, "t.u32", 4000000000u, &err);
    if (!rc) rc = gguf_w_kv(w, "t.i32", GGUF_W_INT32, &i32, &err);
    if (!rc) rc = gguf_w_kv_f32(w, "t.f32", 1e-6f, &err);
    if (!rc) rc = gguf_w_kv_bool(w, "t.bool", true, &err);
    if (!rc) rc = gguf_w_kv_str(w, "t.str", "héllo", strlen("héllo"), &err);
    if (!rc) rc = gguf_w_kv(w, "t.u64", GGUF_W_UINT64, &u64, &err);
    if (!rc) rc = gguf_w_kv(w, "t.i64", GGUF_W_INT64, &i64, &err);
    if (!rc) rc = gguf_w_kv(w, "t.f64", GGUF_W_FLOAT64, &f64, &err);
    if (!rc) rc = gguf_w_kv_array(w, "t.arr_i32", GGUF_W_INT32, arr_i32, 3, &err);
    if (!rc) rc = gguf_w_kv_array(w, "t.arr_f32", GGUF_W_FLOAT32, arr_f32, 2, &err);
    if (!rc) rc = gguf_w_kv_array(w, "t.arr_bool", GGUF_W_BOOL, arr_bool, 3, &err);
    if (!rc) rc = gguf_w_kv_array(w, "t.arr_empty", GGUF_W_UINT8, NULL, 0, &err);
    if (!rc) rc = gguf_w_kv_str_array(w, "t.arr_str", strs, NULL, 3, &err);
    /* a [2, 3] F32 tensor, a 1-D one of 5 F32 values (20 bytes: padded to 64), a [2, 2, 32]
     * "Q8_0" stack of 4 rows of one 34-byte block */
    int64_t s0[2] = {2, 3}, s1[1] = {5}, s2[3] = {2, 2, 32};
    if (!rc) rc = gguf_w_add_tensor(w, "a.weight", 2, s0, 0, 24, &err);
    if (!rc) rc = gguf_w_add_tensor(w, "b.weight", 1, s1, 0, 20, &err);
    if (!rc) rc = gguf_w_add_tensor(w, "c.weight", 3, s2, 8, 4 * 34, &err);
    if (!rc) rc = gguf_w_write_header(w, &err);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[5] = {-1, -2, -3, -4, -5};
    unsigned char c[4 * 34];
    for (int i = 0; i < (int)sizeof c; i++) c[i] = (unsigned char)i;
    if (!rc) rc = gguf_w_write_data(w, a, sizeof a, &err);
    if (!rc) rc = gguf_w_write_data(w, b, 8, &err); /* in pieces that straddle tensors */
    if (!rc) rc = gguf_w_write_data(w, (const char *)b + 8, 12, &err);
    if (!rc) rc = gguf_w_write_data(w, c, 100, &err);
    if (!rc) rc = gguf_w_write_data(w, c + 100, sizeof c - 100, &err);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        gguf_w_abort(w);
        return 1;
    }
    if (gguf_w_finish(w, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    return 0;
}

static void test_errors(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/errors.gguf", dir);
    unlink(path);
    struct ms_err err = {{0}};
    struct gguf_w *w;
    REQUIRE(gguf_w_open(path, false, &w, &err) == MS_OK);
    REQUIRE(gguf_w_kv_u32(w, "k", 1, &err) == MS_OK);
    test_cond("a duplicate key is refused", gguf_w_kv_u32(w, "k", 2, &err) != MS_OK && strstr(err.msg, "duplicate key k"));
    test_cond("a non-power-of-two alignment is refused", gguf_w_kv_u32(w, "general.alignment", 48, &err) != MS_OK);
    int64_t s[2] = {2, 2};
    REQUIRE(gguf_w_add_tensor(w, "t", 2, s, 0, 16, &err) == MS_OK);
    test_cond("a duplicate tensor is refused", gguf_w_add_tensor(w, "t", 2, s, 0, 16, &err) != MS_OK);
    int64_t bad[2] = {2, 0};
    test_cond("a zero dimension is refused", gguf_w_add_tensor(w, "u", 2, bad, 0, 0, &err) != MS_OK);
    test_cond("five dimensions are refused", gguf_w_add_tensor(w, "v", 5, s, 0, 16, &err) != MS_OK);
    REQUIRE(gguf_w_write_header(w, &err) == MS_OK);
    char data[32] = {0};
    test_cond("data past the last tensor is refused", gguf_w_write_data(w, data, 17, &err) != MS_OK);
    gguf_w_abort(w);
    test_cond("abort leaves no file", access(path, F_OK) != 0);

    REQUIRE(gguf_w_open(path, false, &w, &err) == MS_OK);
    REQUIRE(gguf_w_add_tensor(w, "t", 2, s, 0, 16, &err) == MS_OK);
    REQUIRE(gguf_w_write_header(w, &err) == MS_OK);
    REQUIRE(gguf_w_write_data(w, data, 8, &err) == MS_OK);
    test_cond("finishing with a tensor incomplete fails", gguf_w_finish(w, &err) != MS_OK && strstr(err.msg, "8 of 16"));
    test_cond("... and leaves no file", access(path, F_OK) != 0);

    /* without overwrite, a target that appears while writing is not replaced */
    REQUIRE(gguf_w_open(path, false, &w, &err) == MS_OK);
    REQUIRE(gguf_w_write_header(w, &err) == MS_OK);
    FILE *f = fopen(path, "wb");
    if (!f) gguf_w_abort(w);
    REQUIRE(f != NULL);
    fputs("theirs", f);
    fclose(f);
    test_cond("a target that appeared meanwhile is kept", gguf_w_finish(w, &err) != MS_OK && strstr(err.msg, "already exists"));
    f = fopen(path, "rb");
    char buf[16] = {0};
    size_t got = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    test_cond("the target is readable", got == 6);
    test_cond("... unchanged", !strcmp(buf, "theirs"));
    test_cond("an existing target is refused at open", gguf_w_open(path, false, &w, &err) != MS_OK);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_gguf_writer OUT.gguf\n");
        return 2;
    }
    test_cond("the all-types file is written", write_all_types(argv[1]) == 0);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[1]);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    test_errors(dir);
    test_report();
}
