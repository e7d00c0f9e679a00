/* A growable byte string for building responses and parser output. Always NUL-terminated when
 * s != NULL. Not thread-safe; one owner at a time. */
#ifndef MS_SERVER_SBUF_H
#define MS_SERVER_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
    char *s;
    size_t len, cap;
    bool oom; /* an append failed; the content is incomplete */
};

/* Appends n bytes; returns 0, or -1 (and sets oom) when memory runs out. */
int sbuf_append(struct sbuf *b, const char *data, size_t n);
int sbuf_puts(struct sbuf *b, const char *str);
int sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_clear(struct sbuf *b); /* keeps the allocation */
void sbuf_free(struct sbuf *b);
/* Removes the first n bytes. */
void sbuf_consume(struct sbuf *b, size_t n);
/* Takes the buffer's string (caller frees; "" allocated if empty); b is empty afterwards. */
char *sbuf_take(struct sbuf *b);

#endif
