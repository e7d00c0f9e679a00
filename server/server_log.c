#include "server/server_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

enum log_level server_log_level = LOG_LEVEL_INFO;

int server_log_parse_level(const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

void server_log_write(enum log_level level, const char *req_id, const char *fmt, ...)
{
    static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char msg[1024], stamp[32];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one event, one line: control characters from clients (CR/LF in a URL or a field) are
     * written as \xHH so that nobody can forge log lines */
    char safe[4 * sizeof msg];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) o += (size_t)snprintf(safe + o, sizeof safe - o, "\\x%02x", *p);
        else safe[o++] = (char)*p;
    }
    safe[o] = 0;
    fprintf(stderr, "%s.%03dZ %s [%s] %s\n", stamp, (int)(tv.tv_usec / 1000), tags[level], req_id ? req_id : "-",
            safe);
}
