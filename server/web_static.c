/*
 * web_static.c - the web client's files from memory, on the control loop.
 *
 * A file is read, hashed (SHA-256, the first 16 hex digits make the ETag)
 * and gzipped once, on its first request, and kept. Every request stats the
 * file: a new size or mtime (a release copied over the old one) reads it
 * again, so the ETag changes with the bytes and browsers, which revalidate
 * every time under "no-cache", fetch the new file at once. An unchanged file
 * costs one stat and a 304. The gzip variant has its own ETag, as a strong
 * validator must differ per encoding.
 *
 * Only GET and HEAD; a path with "..", a backslash or a NUL, or that is not
 * a regular file under the root, is 404. A response in flight holds a
 * reference to its bytes, so reloading a file never pulls them away.
 */
#include "telemed/web_static.h"

#include <gio/gio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK 16384

typedef struct entry {
    GBytes *plain;
    GBytes *gz; /* NULL when gzip would not make it smaller */
    char etag[24];
    char etag_gz[28];
    const char *ctype;
    off_t size;
    int64_t mtime_ns;
} entry;

struct tm_web_static {
    char *root;
    GHashTable *files; /* request path -> entry */
};

typedef struct static_pss {
    GBytes *body; /* a reference held while sending */
    size_t sent;
} static_pss;

static const struct {
    const char *ext;
    const char *ctype;
    bool compress;
} types[] = {
    {".html", "text/html; charset=utf-8", true},
    {".js", "text/javascript; charset=utf-8", true},
    {".mjs", "text/javascript; charset=utf-8", true},
    {".css", "text/css; charset=utf-8", true},
    {".json", "application/json", true},
    {".svg", "image/svg+xml", true},
    {".txt", "text/plain; charset=utf-8", true},
    {".webmanifest", "application/manifest+json", true},
    {".png", "image/png", false},
    {".ico", "image/x-icon", false},
    {".woff2", "font/woff2", false},
};

static const char *type_of(const char *path, bool *compress)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < G_N_ELEMENTS(types); i++) {
        if (g_ascii_strcasecmp(dot, types[i].ext) == 0) {
            *compress = types[i].compress;
            return types[i].ctype;
        }
    }
    *compress = false;
    return "application/octet-stream";
}

static void entry_free(gpointer data)
{
    entry *e = data;
    g_bytes_unref(e->plain);
    if (e->gz)
        g_bytes_unref(e->gz);
    g_free(e);
}

tm_web_static *tm_web_static_new(const char *root)
{
    tm_web_static *ws = g_new0(tm_web_static, 1);
    ws->root = g_strdup(root);
    ws->files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, entry_free);
    return ws;
}

void tm_web_static_free(tm_web_static *ws)
{
    if (!ws)
        return;
    g_hash_table_destroy(ws->files);
    g_free(ws->root);
    g_free(ws);
}

size_t tm_web_static_pss_size(void)
{
    return sizeof(static_pss);
}

static GBytes *gzip_bytes(GBytes *in)
{
    GZlibCompressor *z = g_zlib_compressor_new(G_ZLIB_COMPRESSOR_FORMAT_GZIP, 9);
    GInputStream *src = g_memory_input_stream_new_from_bytes(in);
    GInputStream *gz = g_converter_input_stream_new(src, G_CONVERTER(z));
    GOutputStream *out = g_memory_output_stream_new_resizable();
    GBytes *result = NULL;
    if (g_output_stream_splice(out, gz, G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, NULL) >= 0)
        result = g_memory_output_stream_steal_as_bytes(G_MEMORY_OUTPUT_STREAM(out));
    g_object_unref(out);
    g_object_unref(gz);
    g_object_unref(src);
    g_object_unref(z);
    return result;
}

/* Reads file into a new entry; NULL if it cannot be read. */
static entry *entry_load(const char *file, const char *path, const struct stat *st)
{
    gchar *data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(file, &data, &len, NULL))
        return NULL;
    entry *e = g_new0(entry, 1);
    e->plain = g_bytes_new_take(data, len);
    e->size = st->st_size;
    e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    bool compress = false;
    e->ctype = type_of(path, &compress);
    gchar *sum = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, e->plain);
    g_snprintf(e->etag, sizeof e->etag, "\"%.16s\"", sum);
    g_snprintf(e->etag_gz, sizeof e->etag_gz, "\"%.16s-gz\"", sum);
    g_free(sum);
    if (compress && len > 256) {
        e->gz = gzip_bytes(e->plain);
        if (e->gz && g_bytes_get_size(e->gz) >= len) {
            g_bytes_unref(e->gz);
            e->gz = NULL;
        }
    }
    return e;
}

static bool path_ok(const char *path)
{
    return path[0] == '/' && !strstr(path, "..") && !strchr(path, '\\') && !strstr(path, "//");
}

/* The entry for a request path, loaded or reloaded as the file says; NULL
 * for anything that is not a readable regular file under the root. */
static entry *lookup(tm_web_static *ws, const char *path)
{
    if (!path_ok(path))
        return NULL;
    const char *rel = strcmp(path, "/") == 0 ? "/index.html" : path;
    gchar *file = g_build_filename(ws->root, rel + 1, NULL);
    struct stat st;
    entry *e = NULL;
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
        goto done;
    e = g_hash_table_lookup(ws->files, rel);
    int64_t mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if (e && e->size == st.st_size && e->mtime_ns == mtime_ns)
        goto done;
    e = entry_load(file, rel, &st);
    if (e)
        g_hash_table_replace(ws->files, g_strdup(rel), e);
done:
    g_free(file);
    return e;
}

/* Whether Accept-Encoding takes gzip (a "gzip;q=0" refuses it). */
static bool takes_gzip(struct lws *wsi)
{
    char ae[256];
    if (lws_hdr_copy(wsi, ae, sizeof ae, WSI_TOKEN_HTTP_ACCEPT_ENCODING) <= 0)
        return false;
    gchar **items = g_strsplit(ae, ",", -1);
    bool yes = false;
    for (gchar **it = items; *it; it++) {
        gchar *item = g_strstrip(*it);
        if (g_ascii_strncasecmp(item, "gzip", 4) != 0 ||
            (item[4] && item[4] != ';' && item[4] != ' '))
            continue;
        const char *q = strstr(item, "q=");
        yes = !q || g_ascii_strtod(q + 2, NULL) > 0;
    }
    g_strfreev(items);
    return yes;
}

/* Whether If-None-Match names etag (or is "*"). */
static bool not_modified(struct lws *wsi, const char *etag)
{
    char inm[512];
    if (lws_hdr_copy(wsi, inm, sizeof inm, WSI_TOKEN_HTTP_IF_NONE_MATCH) <= 0)
        return false;
    return strcmp(g_strstrip(inm), "*") == 0 || strstr(inm, etag) != NULL;
}

static int add(struct lws *wsi, const char *name, const char *value, unsigned char **p,
               unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

static int respond(struct lws *wsi, static_pss *pss, entry *e, bool head)
{
    bool gz = e->gz && takes_gzip(wsi);
    const char *etag = gz ? e->etag_gz : e->etag;
    GBytes *body = gz ? e->gz : e->plain;
    int status = not_modified(wsi, etag) ? HTTP_STATUS_NOT_MODIFIED : HTTP_STATUS_OK;
    size_t len = status == HTTP_STATUS_OK ? g_bytes_get_size(body) : 0;
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)status, e->ctype, len, &p, end) ||
        add(wsi, "etag:", etag, &p, end) || add(wsi, "cache-control:", "no-cache", &p, end) ||
        add(wsi, "vary:", "accept-encoding", &p, end) ||
        add(wsi, "x-content-type-options:", "nosniff", &p, end) ||
        (gz && status == HTTP_STATUS_OK && add(wsi, "content-encoding:", "gzip", &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (len == 0 || head)
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    pss->body = g_bytes_ref(body);
    pss->sent = 0;
    lws_callback_on_writable(wsi);
    return 0;
}

static int write_chunk(struct lws *wsi, static_pss *pss)
{
    if (!pss->body)
        return 0;
    gsize total;
    const guint8 *data = g_bytes_get_data(pss->body, &total);
    size_t n = MIN(total - pss->sent, (size_t)CHUNK);
    unsigned char buf[LWS_PRE + CHUNK];
    memcpy(buf + LWS_PRE, data + pss->sent, n);
    bool last = pss->sent + n == total;
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    pss->sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    g_clear_pointer(&pss->body, g_bytes_unref);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int tm_web_static_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    static_pss *pss = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    tm_web_static *ws = proto ? proto->user : NULL;
    if (!pss || !ws)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        g_clear_pointer(&pss->body, g_bytes_unref);
        char *uri = NULL;
        int ulen = 0;
        int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
        if (method != LWSHUMETH_GET && method != LWSHUMETH_HEAD) {
            lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL);
            return -1;
        }
        gchar *path = g_strndup(uri, (gsize)MAX(ulen, 0));
        entry *e = lookup(ws, path);
        g_free(path);
        if (!e) {
            lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
            return lws_http_transaction_completed(wsi) ? -1 : 0;
        }
        return respond(wsi, pss, e, method == LWSHUMETH_HEAD);
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return write_chunk(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
        g_clear_pointer(&pss->body, g_bytes_unref);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}
