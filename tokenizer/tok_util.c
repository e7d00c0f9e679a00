/* Tokenizer helpers: UTF-8, the byte-level alphabet, buffers, hashing, lossy UTF-8 repair. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

uint32_t tok_byte_to_cp[256];
static int16_t cp_to_byte[324];
static pthread_once_t bytelevel_once = PTHREAD_ONCE_INIT;

static int printable_byte(int b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to 256.. in
 * byte order. */
static void bytelevel_init_once(void)
{
    int n = 0;
    for (int i = 0; i < 324; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = printable_byte(b) ? (uint32_t)b : (uint32_t)(256 + n++);
        tok_byte_to_cp[b] = cp;
        cp_to_byte[cp] = (int16_t)b;
    }
}

void tok_bytelevel_init(void)
{
    pthread_once(&bytelevel_once, bytelevel_init_once);
}

int tok_cp_to_byte(uint32_t cp)
{
    return cp < 324 ? cp_to_byte[cp] : -1;
}

size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;
        if (c == 0xED && s[1] > 0x9F) return 0;
        *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] > 0x8F) return 0;
        *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
        return 4;
    }
    return 0;
}

size_t tok_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Number of bytes of s (at most 4) that form a valid prefix of a UTF-8 character, and in
 * *need the length that character would have (0 if s[0] cannot start one). */
static size_t utf8_good_prefix(const unsigned char *s, size_t n, size_t *need)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        *need = 1;
        return 1;
    }
    if (c < 0xC2 || c > 0xF4) {
        *need = 0;
        return 0;
    }
    if (c < 0xE0)
        len = 2;
    else if (c < 0xF0) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    }
    *need = len;
    size_t k = 1;
    while (k < len && k < n) {
        unsigned b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
        k++;
    }
    return k;
}

size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n, size_t *complete_len)
{
    size_t need, k = utf8_good_prefix(s, n, &need);
    *complete_len = (need && k == need) ? need : 0;
    return (need && k < need && k == n) ? k : 0;
}

int tok_buf_reserve(struct tok_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return MS_ERR_NOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_put(struct tok_buf *b, const void *data, size_t n)
{
    if (tok_buf_reserve(b, n)) return MS_ERR_NOMEM;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

uint64_t tok_hash_bytes(const char *s, size_t len)
{
    /* FNV-1a over 8-byte words, then a final mix. */
    uint64_t h = 0xcbf29ce484222325ULL ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    if (i < len) memcpy(&w, s + i, len - i);
    h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 32;
    return h;
}

int tok_utf8_lossy(const unsigned char *s, size_t n, int final, struct tok_buf *out, size_t *held)
{
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0, run = 0; /* run: start of pending valid bytes */
    if (held) *held = 0;
    if (!n) return tok_buf_put(out, "", 0); /* s may be NULL: no arithmetic on it */
    if (tok_buf_reserve(out, n + n / 2 + 3)) return MS_ERR_NOMEM;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t need, k = utf8_good_prefix(s + i, n - i, &need);
        if (need && k == need) {
            i += k;
            continue;
        }
        if (tok_buf_put(out, s + run, i - run)) return MS_ERR_NOMEM;
        if (need && k == n - i && !final) { /* incomplete at the end: hold it back */
            if (held) *held = k;
            return 0;
        }
        if (tok_buf_put(out, fffd, 3)) return MS_ERR_NOMEM;
        i += k ? k : 1;
        run = i;
    }
    return tok_buf_put(out, s + run, i - run);
}
