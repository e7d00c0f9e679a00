/* The chat page's files, compiled into the binary (the table is generated at build time by
 * server/webui/embed.cmake from server/webui/). Read-only data; any thread. */
#ifndef MS_SERVER_WEBUI_ASSETS_H
#define MS_SERVER_WEBUI_ASSETS_H

#include <stddef.h>

struct webui_asset {
    const char *path;          /* "/webui/app.js" */
    const char *content_type;  /* "text/javascript; charset=utf-8" */
    const unsigned char *data; /* [len] bytes (plus a NUL after them) */
    size_t len;
    const char *etag;          /* quoted, from the SHA-256 of the bytes */
};

extern const struct webui_asset webui_assets[];
extern const size_t webui_n_assets;

#endif
