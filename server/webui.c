#include "server/webui.h"

#include <stdbool.h>
#include <string.h>

/* default-src 'none' and an explicit list: the page may load only its own files and talk only to
 * this origin, so that even a rendering bug could not pull in or send out anything. */
static const char WEBUI_CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const struct webui_asset *webui_find(const char *url)
{
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) url = "/webui/index.html";
    for (size_t i = 0; i < webui_n_assets; i++)
        if (!strcmp(url, webui_assets[i].path)) return &webui_assets[i];
    return NULL;
}

/* If-None-Match holds "*" or a comma-separated list of (possibly weak W/) tags. */
static bool etag_listed(const char *header, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *p = header; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (!strncmp(p, "W/", 2)) p += 2;
        size_t m = strcspn(p, ",");
        while (m && p[m - 1] == ' ') m--;
        if ((m == 1 && *p == '*') || (m == n && !strncmp(p, etag, n))) return true;
        p += strcspn(p, ",");
    }
    return false;
}

struct MHD_Response *webui_response(const struct webui_asset *a, const char *if_none_match, unsigned *status)
{
    bool fresh = if_none_match && etag_listed(if_none_match, a->etag);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(fresh ? 0 : a->len, fresh ? (void *)"" : (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r) return NULL;
    *status = fresh ? 304 : 200;
    if (!fresh) MHD_add_response_header(r, "Content-Type", a->content_type);
    MHD_add_response_header(r, "ETag", a->etag);
    /* revalidate every time: cheap (304) and a new binary's page is picked up at once */
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "Content-Security-Policy", WEBUI_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    return r;
}
