/* The browser chat page at GET / (docs/API.md, "The chat page"): finds a page file by URL and
 * builds its response (Content-Type, ETag, Cache-Control: no-cache, a Content-Security-Policy
 * that lets the page talk only to this server). The files are compiled in (webui_assets.h). */
#ifndef MS_SERVER_WEBUI_H
#define MS_SERVER_WEBUI_H

#include <microhttpd.h>

#include "server/webui_assets.h"

/* The asset served at url: "/" (and "/index.html") is the page, "/webui/NAME" its files; NULL when
 * url is none of them. */
const struct webui_asset *webui_find(const char *url);

/* The response for a: 304 with no body when if_none_match (the request's header, may be NULL)
 * names its ETag, else 200 with the bytes (borrowed, never copied). Sets *status. NULL when out
 * of memory. The caller queues and destroys it. */
struct MHD_Response *webui_response(const struct webui_asset *a, const char *if_none_match, unsigned *status);

#endif
