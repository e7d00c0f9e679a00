/* Server log lines on stderr: "<UTC time> <level> [<request id>] message". The level is the one
 * global the style allows (set once at start). Any thread; a line is written with one call. */
#ifndef MS_SERVER_SERVER_LOG_H
#define MS_SERVER_SERVER_LOG_H

enum log_level {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

extern enum log_level server_log_level;

/* Parses error|warn|info|debug; -1 if unknown. */
int server_log_parse_level(const char *name);

/* Checks the level before evaluating the arguments. */
#define server_log(level, req_id, ...)                                                            \
    do {                                                                                          \
        if ((level) <= server_log_level) server_log_write((level), (req_id), __VA_ARGS__);        \
    } while (0)

void server_log_write(enum log_level level, const char *req_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
