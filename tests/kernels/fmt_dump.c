/* Runs one registered format's row quantizer or dequantizer (engine/kernels/format.h) over a
 * file of rows, for tests/reference/check_c_formats.py to compare with the numpy reference:
 *   fmt_dump quantize FORMAT ROW_LEN IN.f32 OUT.bin    float32 rows -> the format's bytes
 *   fmt_dump dequant  FORMAT ROW_LEN IN.bin OUT.f32    the format's bytes -> float32 rows */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/format.h"

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            char *nb = realloc(buf, cap = cap ? 2 * cap : 1 << 16);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got);
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[1], "quantize") && strcmp(argv[1], "dequant"))) {
        fprintf(stderr, "usage: fmt_dump quantize|dequant FORMAT ROW_LEN IN OUT\n");
        return 2;
    }
    const struct weight_format *f = fmt_by_name(argv[2]);
    long n = atol(argv[3]);
    size_t rb = f ? fmt_row_bytes(f, n) : 0;
    bool quant = !strcmp(argv[1], "quantize");
    if (!f || n <= 0 || !rb || (quant && !f->quantize_row)) {
        fprintf(stderr, "fmt_dump: bad format %s or row length %s\n", argv[2], argv[3]);
        return 2;
    }
    size_t len, in_row = quant ? (size_t)n * sizeof(float) : rb, out_row = quant ? rb : (size_t)n * sizeof(float);
    char *in = read_all(argv[4], &len);
    if (!in || len % in_row) {
        fprintf(stderr, "fmt_dump: %s: unreadable or not whole rows\n", argv[4]);
        free(in);
        return 1;
    }
    size_t rows = len / in_row;
    char *out = malloc(rows * out_row + 1);
    FILE *o = fopen(argv[5], "wb");
    if (!out || !o) {
        fprintf(stderr, "fmt_dump: %s: cannot write\n", argv[5]);
        free(in);
        free(out);
        if (o) fclose(o);
        return 1;
    }
    for (size_t r = 0; r < rows; r++) {
        if (quant)
            f->quantize_row((const float *)(in + r * in_row), out + r * out_row, n);
        else
            f->dequant_row(in + r * in_row, (float *)(out + r * out_row), n);
    }
    int rc = fwrite(out, 1, rows * out_row, o) == rows * out_row ? 0 : 1;
    rc |= fclose(o) ? 1 : 0;
    free(in);
    free(out);
    return rc;
}
