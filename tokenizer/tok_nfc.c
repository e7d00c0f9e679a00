/* NFC normalization from the generated tables (tok_unidata.c).
 *
 * Text is cut at normalization boundaries (characters with combining class 0 and NFC_QC=Yes);
 * a stretch between boundaries is copied as is unless it holds an "unsafe" character, in which
 * case it is decomposed, canonically ordered and recomposed. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_unidata.h"

enum {
    H_SBASE = 0xAC00,
    H_LBASE = 0x1100,
    H_VBASE = 0x1161,
    H_TBASE = 0x11A7,
    H_LCOUNT = 19,
    H_VCOUNT = 21,
    H_TCOUNT = 28,
    H_NCOUNT = H_VCOUNT * H_TCOUNT,
    H_SCOUNT = H_LCOUNT * H_NCOUNT
};

static unsigned ccc_of(uint32_t cp)
{
    if (!(tok_cls(cp) & TOK_C_NFC_UNSAFE)) return 0;
    size_t lo = 0, hi = tok_ccc_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_ccc_table[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < tok_ccc_count && tok_ccc_table[lo].cp == cp ? tok_ccc_table[lo].ccc : 0;
}

static const struct tok_decomp *decomp_of(uint32_t cp)
{
    size_t lo = 0, hi = tok_decomp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_decomp_table[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < tok_decomp_count && tok_decomp_table[lo].cp == cp ? &tok_decomp_table[lo] : NULL;
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    uint64_t key = ((uint64_t)a << 21) | b;
    size_t lo = 0, hi = tok_comp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_comp_table[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < tok_comp_count && tok_comp_table[lo].key == key ? tok_comp_table[lo].cp : 0;
}

struct cpvec {
    uint32_t *v;
    size_t n, cap;
};

static int cp_push(struct cpvec *c, uint32_t cp)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        uint32_t *v = realloc(c->v, cap * sizeof *v);
        if (!v) return MS_ERR_NOMEM;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = cp;
    return 0;
}

/* Normalizes one stretch s[0..n) (valid UTF-8) and appends it to out. */
static int nfc_stretch(const unsigned char *s, size_t n, struct cpvec *cv, struct tok_buf *out)
{
    cv->n = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        i += l;
        if (cp >= H_SBASE && cp < H_SBASE + H_SCOUNT) {
            uint32_t si = cp - H_SBASE;
            if (cp_push(cv, H_LBASE + si / H_NCOUNT) || cp_push(cv, H_VBASE + (si % H_NCOUNT) / H_TCOUNT))
                return MS_ERR_NOMEM;
            if (si % H_TCOUNT && cp_push(cv, H_TBASE + si % H_TCOUNT)) return MS_ERR_NOMEM;
            continue;
        }
        const struct tok_decomp *d = cp >= 0xC0 ? decomp_of(cp) : NULL;
        if (d) {
            for (unsigned k = 0; k < d->len; k++)
                if (cp_push(cv, tok_decomp_pool[d->off + k])) return MS_ERR_NOMEM;
        } else if (cp_push(cv, cp))
            return MS_ERR_NOMEM;
    }
    /* Canonical ordering: stable insertion sort of each run of non-starters. */
    uint32_t *v = cv->v;
    size_t m = cv->n;
    for (size_t i = 1; i < m; i++) {
        unsigned c = ccc_of(v[i]);
        if (!c) continue;
        size_t j = i;
        uint32_t x = v[i];
        while (j > 0) {
            unsigned pc = ccc_of(v[j - 1]);
            if (pc <= c) break;
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    /* Canonical composition. */
    if (m) {
        size_t starter = 0, w = 1;
        int have_starter = ccc_of(v[0]) == 0;
        int last_ccc = have_starter ? 0 : 256;
        for (size_t i = 1; i < m; i++) {
            uint32_t ch = v[i];
            int c = (int)ccc_of(ch);
            if (have_starter && (last_ccc < c || (last_ccc == 0 && w == starter + 1))) {
                uint32_t comp = compose(v[starter], ch);
                if (comp) {
                    v[starter] = comp;
                    continue;
                }
            }
            if (c == 0) {
                starter = w;
                have_starter = 1;
            }
            last_ccc = c;
            v[w++] = ch;
        }
        m = w;
    }
    if (tok_buf_reserve(out, m * 4)) return MS_ERR_NOMEM;
    for (size_t i = 0; i < m; i++) out->len += tok_utf8_encode(v[i], out->p + out->len);
    out->p[out->len] = 0;
    return 0;
}

int tok_nfc(const char *str, size_t n, struct tok_buf *buf, const char **out, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    size_t boundary = 0; /* start of the current stretch */
    size_t copied = 0;   /* bytes of s already handled */
    int dirty = 0, any = 0;
    struct cpvec cv = {0};
    int rc = 0;

    buf->len = 0;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII: always a boundary */
            if (dirty) goto flush;
            boundary = i++;
            continue;
        }
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, n - i, &cp);
        if (!l) { /* not reached for valid input; treat as a boundary byte */
            l = 1;
            cp = 0;
        }
        if (tok_cls(cp) & TOK_C_NFC_UNSAFE) {
            dirty = 1;
            i += l;
            continue;
        }
        if (dirty) goto flush;
        boundary = i;
        i += l;
        continue;
    flush:
        /* s[boundary..i) needs normalizing; s[copied..boundary) is clean. */
        if (!any) any = 1;
        if ((rc = tok_buf_put(buf, s + copied, boundary - copied))) goto out;
        if ((rc = nfc_stretch(s + boundary, i - boundary, &cv, buf))) goto out;
        copied = boundary = i;
        dirty = 0;
    }
    if (dirty) {
        any = 1;
        if ((rc = tok_buf_put(buf, s + copied, boundary - copied))) goto out;
        if ((rc = nfc_stretch(s + boundary, n - boundary, &cv, buf))) goto out;
        copied = n;
    }
    if (!any) {
        *out = str;
        *out_len = n;
    } else {
        if ((rc = tok_buf_put(buf, s + copied, n - copied))) goto out;
        *out = buf->p;
        *out_len = buf->len;
    }
out:
    free(cv.v);
    return rc;
}
