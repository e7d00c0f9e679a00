/* Shared basics for every module: status codes, error messages as values, invariant checks. */
#ifndef MS_COMMON_H
#define MS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Status codes: 0 is success, failures are negative. */
enum ms_status {
    MS_OK = 0,
    MS_ERR_INVALID = -1,     /* bad input: user, file or request */
    MS_ERR_IO = -2,          /* a file or socket operation failed */
    MS_ERR_NOMEM = -3,       /* allocation failed */
    MS_ERR_UNSUPPORTED = -4, /* valid but not supported by this build */
    MS_ERR_INTERNAL = -5,    /* a bug; the message says where */
};

/* A failed call fills one of these with a single line naming what failed (file, field, value).
 * Callers own the storage; a NULL err is allowed and discards the message. */
struct ms_err {
    char msg[512];
};

/* Sets err->msg (printf-style) and returns `status`, so callers can `return ms_err_set(...)`. */
int ms_err_set(struct ms_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with a context such as a file name: "<ctx>: <old message>". */
void ms_err_prefix(struct ms_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Invariant checks stay on in every build; bad user input never reaches one. */
#define MS_ASSERT(cond)                                                                           \
    do {                                                                                          \
        if (!(cond)) ms_assert_fail(#cond, __FILE__, __LINE__);                                   \
    } while (0)
_Noreturn void ms_assert_fail(const char *expr, const char *file, int line);

/* Allocation helpers that abort-free: they return NULL on failure like malloc. */
void *ms_calloc(size_t n, size_t size);

/* Copies src into dst[cap], truncating, always NUL-terminated (cap > 0). */
void ms_strlcpy(char *dst, const char *src, size_t cap);

/* Monotonic clock in seconds. */
double ms_now(void);

/* Reads a whole file into a NUL-terminated heap buffer (caller frees); *len gets its length. */
int ms_read_file(const char *path, char **out, size_t *len, struct ms_err *err);

#endif
