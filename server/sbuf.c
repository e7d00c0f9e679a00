#include "server/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sbuf_reserve(struct sbuf *b, size_t extra)
{
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

int sbuf_append(struct sbuf *b, const char *data, size_t n)
{
    if (sbuf_reserve(b, n)) return -1;
    if (n) memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

int sbuf_puts(struct sbuf *b, const char *str)
{
    return sbuf_append(b, str, strlen(str));
}

int sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sbuf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void sbuf_clear(struct sbuf *b)
{
    b->len = 0;
    if (b->s) b->s[0] = 0;
}

void sbuf_free(struct sbuf *b)
{
    free(b->s);
    *b = (struct sbuf){0};
}

void sbuf_consume(struct sbuf *b, size_t n)
{
    if (n >= b->len) {
        sbuf_clear(b);
        return;
    }
    memmove(b->s, b->s + n, b->len - n);
    b->len -= n;
    b->s[b->len] = 0;
}

char *sbuf_take(struct sbuf *b)
{
    char *s = b->s ? b->s : calloc(1, 1);
    *b = (struct sbuf){0};
    return s;
}
