/*
 * main.c - the telemed-server process: configuration, the data directory,
 * TLS, the store, and one GLib main loop that runs signaling, the regulator
 * feed and libwebsockets (HTTPS + WSS on one port; lws on a libuv loop that
 * the GLib loop runs, see uv_source.h). Media workers run on their own
 * threads and talk to this loop by messages.
 *
 *   telemed-server [options]            run the server
 *   telemed-server --demo               run with the demo hospital
 *   telemed-server token --sub ... ...  mint a token (tests, demo)
 *   telemed-server decrypt-recording IN OUT [--key-file F]
 *   telemed-server verify-visit ID [--json]  check a visit record end to end
 */
#include "app.h"
#include "telemed/certs.h"
#include "telemed/cluster.h"
#include "telemed/common.h"
#include "telemed/log.h"
#include "telemed/rec_crypt.h"
#include "telemed/store.h"
#include "review_render.h"
#include "uv_source.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The database as a log line may name it: a PostgreSQL URL can carry a
 * password, so it is named by its engine only. */
static const char *db_for_log(const char *db)
{
    return g_str_has_prefix(db, "postgres") && strstr(db, "://") ? "postgresql" : db;
}

/* The data directory holds patient data and keys: only the server's user
 * may enter it. One made by an older version or by hand with a wider mode
 * is narrowed, and the log says so. */
static int close_data_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) < 0)
        return TM_EIO;
    if ((sb.st_mode & 0077) == 0)
        return 0;
    if (chmod(dir, 0700) < 0) {
        fprintf(stderr, "telemed-server: cannot restrict data_dir %s to 0700: %s\n", dir,
                g_strerror(errno));
        return TM_EIO;
    }
    tm_warn("data_dir.mode_fixed", "path=%s was=%04o now=0700", dir,
            (unsigned)(sb.st_mode & 07777));
    return 0;
}

static int make_dirs(tm_app *app)
{
    if (g_mkdir_with_parents(app->cfg.data_dir, 0700) < 0) {
        fprintf(stderr, "telemed-server: cannot create data_dir %s: %s\n", app->cfg.data_dir,
                g_strerror(errno));
        return TM_EIO;
    }
    if (close_data_dir(app->cfg.data_dir) < 0)
        return TM_EIO;
    gchar *tls = g_build_filename(app->cfg.data_dir, "tls", NULL);
    int rc = g_mkdir_with_parents(tls, 0700);
    g_free(tls);
    return rc < 0 ? TM_EIO : 0;
}

/* 32 random bytes as 64 hex digits into a new file of mode 0600 (O_EXCL:
 * never over an existing one). *hex receives the text (g_free). */
static int make_secret_file(const char *path, char **hex_out)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return TM_EIO;
    GString *hex = g_string_new(NULL);
    for (size_t i = 0; i < sizeof(raw); i++)
        g_string_append_printf(hex, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, hex->str, hex->len) != (ssize_t)hex->len || fsync(fd) < 0) {
        fprintf(stderr, "telemed-server: cannot write %s: %s\n", path, g_strerror(errno));
        rc = TM_EIO;
    }
    if (fd >= 0)
        close(fd);
    *hex_out = g_string_free(hex, FALSE);
    return rc;
}

/* jwt_secret_file's text without the blanks around it; an empty file is
 * refused rather than taken as a secret anyone could guess. */
static int read_jwt_secret_file(tm_app *app)
{
    GError *gerr = NULL;
    gchar *text = NULL;
    if (!g_file_get_contents(app->cfg.jwt_secret_file, &text, NULL, &gerr)) {
        fprintf(stderr, "telemed-server: jwt_secret_file: %s\n", gerr->message);
        g_error_free(gerr);
        return TM_EIO;
    }
    g_strstrip(text);
    if (!*text) {
        fprintf(stderr, "telemed-server: jwt_secret_file %s is empty\n", app->cfg.jwt_secret_file);
        g_free(text);
        return TM_EINVAL;
    }
    app->jwt_secret = text;
    return 0;
}

/* The HS256 secret: configured (environment, config file or jwt_secret_file;
 * never a flag, which ps shows), or made once and kept in data_dir so that
 * tokens survive restarts. With an identity provider's public keys and no
 * secret configured there is none: a secret on the host would let anyone
 * who can read it (`telemed-server token`) mint around the provider. */
static int load_jwt_secret(tm_app *app)
{
    if (app->cfg.jwt_secret) {
        app->jwt_secret = g_strdup(app->cfg.jwt_secret);
        return 0;
    }
    if (app->cfg.jwt_secret_file)
        return read_jwt_secret_file(app);
    if (app->cfg.jwt_public_keys)
        return 0;
    gchar *path = g_build_filename(app->cfg.data_dir, "jwt.secret", NULL);
    gchar *text = NULL;
    int rc = 0;
    if (g_file_get_contents(path, &text, NULL, NULL))
        app->jwt_secret = g_strstrip(text);
    else
        rc = make_secret_file(path, &app->jwt_secret);
    g_free(path);
    return rc;
}

static int load_public_keys(tm_app *app)
{
    if (!app->cfg.jwt_public_keys)
        return 0;
    gchar **paths = g_strsplit(app->cfg.jwt_public_keys, ",", -1);
    int rc = 0;
    for (gchar **p = paths; *p && rc == 0; p++) {
        g_strstrip(*p);
        if (**p && (rc = tm_jwt_verifier_add_key_file(app->jwt, *p)) < 0)
            fprintf(stderr, "telemed-server: jwt public key %s: %s\n", *p, tm_strerror(rc));
    }
    g_strfreev(paths);
    return rc;
}

/* The key made on first start, unless made now when create is set (then it
 * is in the log: it must be backed up with the recordings, docs/config.md). */
static int load_default_recording_key(tm_app *app, bool create, uint8_t key[32], bool *have)
{
    gchar *path = g_build_filename(app->cfg.data_dir, "recording.key", NULL);
    char *err = NULL, *hex = NULL;
    int rc = 0;
    if (g_file_test(path, G_FILE_TEST_EXISTS)) {
        if ((rc = tm_rec_key_load_file(path, key, &err)) < 0)
            fprintf(stderr, "telemed-server: %s: %s\n", path, err ? err : "unreadable");
        *have = rc == 0;
    } else if (create) {
        if ((rc = make_secret_file(path, &hex)) == 0 &&
            (rc = tm_rec_key_parse_hex(hex, key)) == 0) {
            *have = true;
            tm_warn("recording.key_created", "path=%s backup=required", path);
        }
    }
    if (hex)
        OPENSSL_cleanse(hex, strlen(hex));
    g_free(hex);
    g_free(err);
    g_free(path);
    return rc;
}

/* The recording key: recording_key (environment or config file, never a
 * flag), recording_key_file, or data_dir/recording.key, made on first start
 * when recordings are encrypted (the default). *have is set when a key is
 * there; with encryption off one is still read to serve older recordings. */
static int load_recording_key(tm_app *app, bool create, uint8_t key[32], bool *have)
{
    char *err = NULL;
    *have = false;
    if (app->cfg.recording_key) {
        if (tm_rec_key_parse_hex(app->cfg.recording_key, key) < 0) {
            fprintf(stderr, "telemed-server: recording_key must be 64 hex digits\n");
            return TM_EINVAL;
        }
        *have = true;
        return 0;
    }
    if (app->cfg.recording_key_file) {
        if (tm_rec_key_load_file(app->cfg.recording_key_file, key, &err) < 0) {
            fprintf(stderr, "telemed-server: recording_key_file: %s\n", err ? err : "unreadable");
            g_free(err);
            return TM_EINVAL;
        }
        *have = true;
        return 0;
    }
    return load_default_recording_key(app, create && app->cfg.recording_encrypt, key, have);
}

/* Recordings older than the retention period are deleted (and audited),
 * and the review copies made from them. */
static gboolean retention_sweep(gpointer data)
{
    tm_app *app = data;
    int deleted = 0, failed = 0;
    if (tm_recording_retention_sweep(app->store, app->cfg.retention_recordings_days, tm_now_ms(),
                                     &deleted, &failed) == 0 &&
        (deleted || failed))
        tm_info("recording.retention", "deleted=%d failed=%d days=%d", deleted, failed,
                app->cfg.retention_recordings_days);
    if (tm_rendition_retention_sweep(app->store, app->cfg.retention_recordings_days, tm_now_ms(),
                                     &deleted, &failed) == 0 &&
        (deleted || failed))
        tm_info("review.retention", "deleted=%d failed=%d days=%d", deleted, failed,
                app->cfg.retention_recordings_days);
    return G_SOURCE_CONTINUE;
}

/* telemed-server decrypt-recording IN OUT: an encrypted recording back to
 * a playable Matroska file, with the configured key (or --key-file). */
static int decrypt_main(tm_app *app, int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *key_file = NULL;
    bool usage = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
            key_file = argv[++i];
        else if (!in)
            in = argv[i];
        else if (!out)
            out = argv[i];
        else
            usage = true;
    }
    if (usage || !in || !out) {
        fprintf(stderr, "usage: telemed-server decrypt-recording IN OUT [--key-file FILE]\n");
        return 2;
    }
    uint8_t key[32];
    bool have = false;
    char *err = NULL;
    if (key_file) {
        if (tm_rec_key_load_file(key_file, key, &err) < 0) {
            fprintf(stderr, "telemed-server: %s: %s\n", key_file, err ? err : "unreadable");
            g_free(err);
            return 2;
        }
        have = true;
    } else if (load_recording_key(app, false, key, &have) < 0) {
        return 2;
    }
    if (!have) {
        fprintf(stderr, "telemed-server: no key: give --key-file, configure recording_key_file "
                        "or keep data_dir/recording.key\n");
        return 2;
    }
    int rc = tm_rec_decrypt_file(in, out, key, &err);
    if (rc < 0) {
        fprintf(stderr, "telemed-server: decrypt %s: %s\n", in, err ? err : tm_strerror(rc));
        g_free(err);
        return 1;
    }
    if (rc > 0)
        fprintf(stderr, "telemed-server: %s was cut short; everything before the cut is in %s\n",
                in, out);
    g_free(err);
    return rc > 0 ? 1 : 0;
}

/* The seal key. The server makes it on first start; but when visits are
 * sealed already a missing key is a lost one (the seals could no longer be
 * checked), so the server refuses to start rather than make another. */
static int load_seal_key(tm_app *app, bool create)
{
    tm_seal_alg alg = TM_SEAL_ECDSA_P256;
    tm_seal_alg_parse(app->cfg.seal_algorithm, &alg);
    const char *path = app->cfg.seal_key_file;
    int64_t sealed = 0;
    if (access(path, F_OK) != 0 && !create) {
        fprintf(stderr,
                "telemed-server: no seal key at %s: a seal is checked with the key that made "
                "it; restore the key from the backup (docs/config.md, \"The seal key\") or "
                "point seal_key_file at it\n",
                path);
        return TM_ENOTFOUND;
    }
    if (access(path, F_OK) != 0 && (tm_store_seal_count(app->store, &sealed) < 0 || sealed)) {
        fprintf(stderr,
                "telemed-server: the seal key %s is missing but %lld visits are sealed with "
                "it: restore it from the backup (docs/config.md, \"The seal key\") or point "
                "seal_key_file at it\n",
                path, (long long)sealed);
        return TM_ENOTFOUND;
    }
    char *err = NULL;
    bool created = false;
    app->seal_key = tm_seal_key_load(path, alg, create, &created, &err);
    if (!app->seal_key) {
        fprintf(stderr, "telemed-server: %s\n", err ? err : "cannot load the seal key");
        g_free(err);
        return TM_EINVAL;
    }
    if (created)
        tm_warn("seal.key_created", "path=%s alg=%s key_id=%s backup=needed", path,
                tm_seal_alg_name(alg), tm_seal_key_id(app->seal_key));
    return 0;
}

static void print_differences(const char *visit_id, json_t *report)
{
    json_t *diffs = json_object_get(report, "differences");
    if (json_array_size(diffs) == 0) {
        json_t *seal = json_object_get(report, "seal");
        if (json_is_true(json_object_get(report, "sealed")))
            printf("visit %s: verified: sealed at %s with %s key %s; %lld events (%lld after "
                   "the seal's coverage), %zu recording(s)\n",
                   visit_id, json_string_value(json_object_get(seal, "sealed_at")),
                   json_string_value(json_object_get(seal, "algorithm")),
                   json_string_value(json_object_get(seal, "key_id")),
                   (long long)json_integer_value(
                       json_object_get(json_object_get(report, "chain"), "events")),
                   (long long)json_integer_value(json_object_get(report, "events_after_seal")),
                   json_array_size(json_object_get(report, "recordings")));
        else
            printf("visit %s: not sealed yet; its chain and files check out\n", visit_id);
    } else {
        printf("visit %s: CHANGED (%zu difference(s))\n", visit_id, json_array_size(diffs));
    }
    size_t i;
    json_t *d;
    json_array_foreach(diffs, i, d)
        printf("  %s %s: %s\n", json_string_value(json_object_get(d, "part")),
               json_string_value(json_object_get(d, "id")),
               json_string_value(json_object_get(d, "detail")));
    json_array_foreach(json_object_get(report, "unchecked"), i, d)
        printf("  not checked: %s\n", json_string_value(d));
}

/* telemed-server verify-visit ID [--json]: the check of GET
 * /api/v1/visits/{id}/verify, from the host. Exit 0 unchanged, 1 changed,
 * 2 when it cannot be checked. */
static int verify_main(tm_app *app, int argc, char **argv)
{
    const char *visit_id = NULL;
    bool as_json = false, usage = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (!visit_id)
            visit_id = argv[i];
        else
            usage = true;
    }
    if (usage || !visit_id) {
        fprintf(stderr, "usage: telemed-server verify-visit ID [--json]\n");
        return 2;
    }
    char *err = NULL;
    app->store = tm_store_open(app->cfg.db, app->cfg.hospital_id, &err);
    if (!app->store) {
        fprintf(stderr, "telemed-server: store %s: %s\n", db_for_log(app->cfg.db), err);
        g_free(err);
        return 2;
    }
    if (load_seal_key(app, false) < 0 ||
        load_recording_key(app, false, app->rec_key, &app->have_rec_key) < 0)
        return 2;
    int rc = 0;
    json_t *report = tm_record_verify(app->store, visit_id, app->seal_key,
                                      app->have_rec_key ? app->rec_key : NULL, &rc);
    if (!report) {
        fprintf(stderr, "telemed-server: verify-visit %s: %s\n", visit_id,
                rc == TM_ENOTFOUND ? "no such visit" : tm_store_errmsg(app->store));
        return 2;
    }
    if (as_json) {
        json_dumpf(report, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        print_differences(visit_id, report);
    }
    int status = json_is_true(json_object_get(report, "ok")) ? 0 : 1;
    json_decref(report);
    return status;
}

static gboolean on_sigint(gpointer data)
{
    tm_app *app = data;
    tm_info("server.stopping", "reason=signal signal=INT");
    g_main_loop_quit(app->loop);
    return G_SOURCE_CONTINUE;
}

/* SIGTERM is how systemd and an upgrade stop a node: the first drains it
 * (live visits finish, then the process exits 0), a second stops it now. */
static gboolean on_sigterm(gpointer data)
{
    tm_app *app = data;
    if (tm_node_drain(app->node, "signal") == 0)
        return G_SOURCE_CONTINUE;
    tm_info("server.stopping", "reason=signal signal=TERM node=%s", tm_node_id(app->node));
    g_main_loop_quit(app->loop);
    return G_SOURCE_CONTINUE;
}

static void node_stop_taking(void *data)
{
    tm_app *app = data;
    tm_signaling_drain(app->sig);
}

static int node_live_visits(void *data)
{
    tm_app *app = data;
    return tm_signaling_live_visits(app->sig);
}

static void node_drained(void *data, bool timed_out, int left)
{
    tm_app *app = data;
    tm_info("server.stopping", "reason=drained node=%s timed_out=%s live_visits=%d",
            tm_node_id(app->node), timed_out ? "yes" : "no", left);
    g_main_loop_quit(app->loop);
}

/* lws stops polling its listener once it holds fd_limit_per_thread
 * sockets; set above what the process may open, accept() fails with EMFILE
 * while the listener stays readable and the loop spins. So the budget comes
 * from RLIMIT_NOFILE (the soft limit raised to the hard one), less a reserve
 * for media sockets, recordings, the database and the loop itself; and
 * WebSocket sessions get at most seven eighths of it, leaving room for REST. */
#define FD_CEILING (1u << 20)

static unsigned fit_fd_budget(tm_app *app)
{
    struct rlimit rl = {1024, 1024};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {MIN(rl.rlim_max, (rlim_t)FD_CEILING), rl.rlim_max};
        if (up.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = up.rlim_cur;
    }
    unsigned nofile = rl.rlim_cur > FD_CEILING ? FD_CEILING : (unsigned)rl.rlim_cur;
    unsigned reserve = 64 + nofile / 8;
    unsigned budget = nofile > reserve + 64 ? nofile - reserve : 64;
    unsigned lws_fds = MIN((unsigned)app->cfg.max_connections + 256, budget);
    int configured = app->cfg.max_connections;
    int fits = (int)(lws_fds - lws_fds / 8);
    if (configured > fits)
        app->cfg.max_connections = fits;
    if (app->cfg.max_connections < configured)
        tm_warn("server.fd_budget",
                "nofile=%u reserve=%u lws_fds=%u max_connections=%d "
                "configured=%d reason=open_file_limit",
                nofile, reserve, lws_fds, app->cfg.max_connections, configured);
    else
        tm_info("server.fd_budget", "nofile=%u reserve=%u lws_fds=%u max_connections=%d", nofile,
                reserve, lws_fds, app->cfg.max_connections);
    return lws_fds;
}

static void on_ws_authenticated(struct lws *wsi, void *data)
{
    tm_app *app = data;
    tm_conn_limit_authenticated(app->conn_limit, lws_get_socket_fd(wsi));
}

static struct lws_protocols protocols[] = {
    {"http-api", tm_http_callback, 0, 0, 0, NULL, 0},
    {"telemed.v1", tm_signaling_lws_callback, 0, 0, 0, NULL, 0},
    {"web-static", tm_web_static_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const lws_retry_bo_t retry = {
    /* Ping a quiet WebSocket after 30 s and drop it 30 s later: that is how
     * a vanished peer's grace period starts without waiting for TCP. Each
     * re-armed timer costs a walk of lws' sorted timer list, so with
     * thousands waiting a shorter interval costs real CPU. */
    .secs_since_valid_ping = 30,
    .secs_since_valid_hangup = 60,
};

/* lws reads at most one buffer per connection per event. When OpenSSL holds
 * more of a request than that (a REST body of tens of KiB arrives in 16 KiB
 * TLS records), no fd will say so: lws marks the connection for "forced
 * service", which its libuv idle handler runs once and then stops. Anything
 * still pending after that would wait for the next unrelated event, so we
 * wake lws' event pipe, whose service starts that handler again. */
static void lws_force_pending(void *data)
{
    tm_app *app = data;
    if (app->lws && lws_service_adjust_timeout(app->lws, 1, 0) == 0)
        lws_cancel_service(app->lws);
}

/* Sent with every HTTP answer, pages and REST alike (lws adds a vhost's
 * canned headers to each response). The pages carry tokens in their URL
 * fragment: no framing (clickjacking), no script but our own, HTTPS only.
 * x-content-type-options is sent by each responder (http.c, web_static.c). */
static struct lws_protocol_vhost_options security_headers[] = {
    {&security_headers[1], NULL, "content-security-policy:", NULL /* content_policy() */},
    {&security_headers[2], NULL, "x-frame-options:", "DENY"},
    {&security_headers[3], NULL, "strict-transport-security:", "max-age=31536000"},
    {NULL, NULL, "referrer-policy:", "no-referrer"},
};

/* The pages may connect to the other nodes (cluster_urls) when theirs is
 * gone or draining (docs/protocol.md); nothing else beyond 'self'. */
static char *content_policy(tm_app *app)
{
    GString *connect = g_string_new("'self'");
    json_t *nodes = tm_node_cluster_ws_urls(app->cfg.cluster_urls);
    size_t i;
    json_t *url;
    json_array_foreach(nodes, i, url)
        g_string_append_printf(connect, " %s", json_string_value(url));
    json_decref(nodes);
    char *csp = g_strdup_printf(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob: mediastream:; connect-src %s; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        connect->str);
    g_string_free(connect, TRUE);
    return csp;
}

static int start_lws(tm_app *app, unsigned lws_fds)
{
    app->csp = content_policy(app);
    security_headers[0].value = app->csp;
    static struct lws_http_mount mounts[4];
    memset(mounts, 0, sizeof(mounts));
    /* The web client at "/": gzip and content ETags (web_static.c) rather
     * than lws' file mount, which sends every file whole with no-store. It
     * comes first: among callback mounts lws takes the last that matches,
     * so the API's mounts after it win for their paths. */
    app->web = tm_web_static_new(app->cfg.web_root);
    if (!g_file_test(app->cfg.web_root, G_FILE_TEST_IS_DIR))
        tm_warn("server.web_root_missing", "pages=404");
    mounts[0].mount_next = &mounts[1];
    mounts[0].mountpoint = "/";
    mounts[0].mountpoint_len = 1;
    mounts[0].origin = "web-static";
    mounts[0].origin_protocol = LWSMPRO_CALLBACK;
    static const char *const dynamic[] = {"/api", "/healthz", "/metrics"};
    for (int i = 1; i < 4; i++) {
        mounts[i].mount_next = i < 3 ? &mounts[i + 1] : NULL;
        mounts[i].mountpoint = dynamic[i - 1];
        mounts[i].mountpoint_len = (unsigned char)strlen(dynamic[i - 1]);
        mounts[i].origin = "http-api";
        mounts[i].origin_protocol = LWSMPRO_CALLBACK;
    }

    protocols[0].per_session_data_size = tm_http_pss_size();
    protocols[1].per_session_data_size = tm_signaling_pss_size();
    protocols[1].rx_buffer_size = 16384;
    protocols[1].user = app->sig;
    protocols[2].per_session_data_size = tm_web_static_pss_size();
    protocols[2].user = app->web;

    if (uv_loop_init(&app->uv) != 0) {
        fprintf(stderr, "telemed-server: cannot make the connections' event loop\n");
        return TM_EIO;
    }
    app->uv_source = tm_uv_source_new(&app->uv, lws_force_pending, app);
    g_source_attach(app->uv_source, g_main_loop_get_context(app->loop));

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    void *foreign_loops[1] = {&app->uv};
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    if (strchr(app->cfg.listen, ':'))
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = foreign_loops;
    info.port = app->cfg.port;
    info.iface = strcmp(app->cfg.listen, "0.0.0.0") == 0 ? NULL : app->cfg.listen;
    info.protocols = protocols;
    info.mounts = mounts;
    info.ssl_cert_filepath = app->cfg.tls_cert;
    info.ssl_private_key_filepath = app->cfg.tls_key;
    info.alpn = "http/1.1";
    info.user = app;
    info.pcontext = &app->lws;
    info.retry_and_idle_policy = &retry;
    info.timeout_secs = 30;
    info.max_http_header_data = 12288; /* room for a long bearer token */
    info.fd_limit_per_thread = lws_fds;
    info.vhost_name = "telemed";
    info.headers = security_headers;
    app->lws = lws_create_context(&info);
    if (!app->lws) {
        fprintf(stderr, "telemed-server: cannot listen on %s:%d (TLS %s)\n", app->cfg.listen,
                app->cfg.port, app->cfg.tls_cert);
        return TM_EIO;
    }
    /* On a foreign loop lws keeps the context when its vhost cannot bind
     * (the port is taken): without the vhost nothing listens. */
    struct lws_vhost *vh = lws_get_vhost_by_name(app->lws, "telemed");
    if (!vh) {
        fprintf(stderr, "telemed-server: cannot listen on %s:%d (is the port in use?)\n",
                app->cfg.listen, app->cfg.port);
        app->lws_unbound = true;
        return TM_EIO;
    }
    app->port = lws_get_vhost_listen_port(vh);
    return 0;
}

static int start_media(tm_app *app)
{
    tm_media_options mo = {
        .workers = app->cfg.media_workers,
        .addresses = app->cfg.media_addresses,
        .public_ip = app->cfg.media_public_ip,
        .port_min = app->cfg.media_port_min,
        .port_max = app->cfg.media_port_max,
        .stock_io = !app->cfg.media_direct_io,
        .send_each = !app->cfg.media_send_batch,
        .keep_dtls = !app->cfg.media_dtls_shed,
        .rx_epoll = app->cfg.media_rx_epoll,
        .stock_srtp = !app->cfg.media_srtp_nettle,
        .transport_cc = app->cfg.media_transport_cc,
        .max_candidates = app->cfg.media_max_candidates,
        .candidate_networks = app->cfg.media_candidate_networks,
        .ice_pacing_ms = app->cfg.media_ice_pacing_ms,
    };
    char *err = NULL;
    app->media = tm_media_new(&mo, g_main_loop_get_context(app->loop), tm_signaling_on_media_event,
                              app->sig, &err);
    if (!app->media) {
        fprintf(stderr, "telemed-server: media: %s\n", err ? err : "cannot start");
        g_free(err);
        return TM_EIO;
    }
    tm_signaling_set_media(app->sig, app->media);
    tm_visit_record_set_media(app->record, app->media);
    return 0;
}

/* ---- the alliance (issue 18) ---- */

static int put_member(const char *id, const char *name, const char *org_code, const char *level,
                      const char *kind, void *store)
{
    tm_institution in = {0};
    g_strlcpy(in.id, id, sizeof(in.id));
    g_strlcpy(in.name, name, sizeof(in.name));
    g_strlcpy(in.org_code, org_code ? org_code : "", sizeof(in.org_code));
    g_strlcpy(in.level, level ? level : "", sizeof(in.level));
    g_strlcpy(in.kind, kind, sizeof(in.kind));
    return tm_store_institution_put(store, &in);
}

/* The core (hospital_*) and the members the config declares, written at
 * every start so the store follows the config file. */
static int declare_alliance(tm_app *app)
{
    const tm_config *c = &app->cfg;
    int rc = put_member(c->hospital_id, c->hospital_name, c->hospital_org_code, c->hospital_level,
                        "core", app->store);
    char *err = NULL;
    if (rc == 0 &&
        (rc = tm_config_foreach_institution(c->institutions, put_member, app->store, &err)) ==
            TM_EINVAL &&
        err) {
        fprintf(stderr, "telemed-server: %s\n", err);
        g_free(err);
        return rc;
    }
    if (rc < 0)
        fprintf(stderr, "telemed-server: institutions: %s\n", tm_store_errmsg(app->store));
    return rc;
}

/* A PostgreSQL database, which several nodes may share. */
/* This node among several (issue 19, server/cluster.c). On a PostgreSQL
 * database the node registers and beats in it, and the database carries the
 * bus; on SQLite it is the only node: the bus is in-process and there is no
 * registry to keep, so the signaling code path is the same. */
static int start_cluster(tm_app *app)
{
    bool shared = tm_config_db_shared(&app->cfg);
    char *err = NULL;
    app->cluster = tm_cluster_new(&(tm_cluster_options){.node_id = tm_node_id(app->node),
                                                        .public_url = tm_node_public_url(app->node),
                                                        .store = shared ? app->store : NULL,
                                                        .bus_url = shared ? app->cfg.db : NULL},
                                  &err);
    if (!app->cluster) {
        fprintf(stderr, "telemed-server: cluster: %s\n", err);
        g_free(err);
        return -1;
    }
    tm_signaling_set_cluster(app->sig, app->cluster);
    return 0;
}

static int run(tm_app *app)
{
    char *err = NULL;
    int created = 0;
    int rc = tm_certs_ensure_files(app->cfg.tls_cert, app->cfg.tls_key, "telemed", &created);
    if (rc < 0) {
        fprintf(stderr, "telemed-server: TLS certificate %s: %s\n", app->cfg.tls_cert,
                tm_strerror(rc));
        return 1;
    }
    if (created)
        tm_info("tls.self_signed", "cert=%s", app->cfg.tls_cert);
    app->store = tm_store_open(app->cfg.db, app->cfg.hospital_id, &err);
    if (!app->store) {
        fprintf(stderr, "telemed-server: store %s: %s\n", db_for_log(app->cfg.db), err);
        g_free(err);
        return 1;
    }
    /* Outbox rows this node delivers are leased to it for twice a request's
     * timeout: a live node finishes (or gives up) well within, a dead one's
     * rows go to another node once that has passed (docs/cluster.md). */
    if (tm_store_set_lease(app->store, app->cfg.node_id, 2LL * app->cfg.feed_timeout_ms) < 0) {
        fprintf(stderr, "telemed-server: node_id: %s\n", tm_store_errmsg(app->store));
        return 1;
    }
    /* On a shared store the other nodes' rows are theirs, still being written. */
    int recovered = 0;
    int rec_rc =
        tm_config_db_shared(&app->cfg)
            ? tm_recording_recover_node(app->store, app->cfg.node_id, tm_now_ms(), &recovered)
            : tm_recording_recover(app->store, tm_now_ms(), &recovered);
    if (rec_rc == 0 && recovered)
        tm_warn("recording.recovered", "incomplete=%d", recovered);
    if (declare_alliance(app) < 0)
        return 1;
    if (app->cfg.demo && (rc = tm_demo_seed(app)) < 0) {
        fprintf(stderr, "telemed-server: demo seed: %s\n", tm_store_errmsg(app->store));
        return 1;
    }
    if (load_seal_key(app, true) < 0)
        return 1;
    app->jwt = tm_jwt_verifier_new(app->jwt_secret);
    if (!app->jwt || load_public_keys(app) < 0)
        return 1;
    tm_jwt_verifier_set_max_lifetime(app->jwt, app->cfg.jwt_max_lifetime_s);
    tm_info("identity.ready", "hs256=%s public_keys=%s max_lifetime_s=%d",
            app->jwt_secret ? "on" : "off", app->cfg.jwt_public_keys ? "on" : "off",
            app->cfg.jwt_max_lifetime_s);
    unsigned lws_fds = fit_fd_budget(app);
    app->loop = g_main_loop_new(NULL, FALSE);
    app->sig = tm_signaling_new(&app->cfg, app->store, app->jwt, &err);
    if (!app->sig) {
        fprintf(stderr, "telemed-server: %s\n", err);
        g_free(err);
        return 1;
    }
    app->profiles =
        tm_feed_profiles_start(app->store, &app->cfg, g_main_loop_get_context(app->loop), &err);
    if (!app->profiles) {
        fprintf(stderr, "telemed-server: feed: %s\n", err);
        g_free(err);
        return 1;
    }
    app->feed = tm_feed_profiles_webhook(app->profiles);
    if (app->feed)
        tm_signaling_set_feed(app->sig, app->feed);
    if (app->cfg.messaging_url) {
        app->messaging =
            tm_messaging_new(app->store, &app->cfg, g_main_loop_get_context(app->loop), &err);
        if (!app->messaging) {
            fprintf(stderr, "telemed-server: messaging: %s\n", err);
            g_free(err);
            return 1;
        }
        tm_feed_also_kick(app->feed, app->messaging);
    }
    app->record = tm_visit_record_new(&app->cfg, app->store);
    tm_visit_record_set_feed(app->record, app->feed);
    tm_signaling_set_visit_record(app->sig, app->record);
    if (load_recording_key(app, true, app->rec_key, &app->have_rec_key) < 0)
        return 1;
    if (app->cfg.recording_encrypt)
        tm_visit_record_set_key(app->record, app->rec_key);
    else if (app->cfg.recording)
        tm_warn(
            "recording.encryption_off",
            "recordings=plain reason=recording_encrypt_false risk=patient_video_readable_on_disk");
    if (app->cfg.recording) {
        /* The child runs this very binary, even when an upgrade replaced
         * the file since the start. */
        app->review = tm_review_new(&app->cfg, app->store, "/proc/self/exe",
                                    g_main_loop_get_context(app->loop));
        if (app->have_rec_key)
            tm_review_set_key(app->review, app->rec_key, app->cfg.recording_encrypt);
        tm_visit_record_set_review(app->record, app->review);
    }
    app->conn_limit = tm_conn_limit_new(app->cfg.max_unauth_per_addr);
    tm_signaling_set_on_authenticated(app->sig, on_ws_authenticated, app);
    app->sealer = tm_sealer_new(app->store, app->seal_key, app->cfg.seal_after_s,
                                g_main_loop_get_context(app->loop));
    if (start_media(app) < 0 || start_lws(app, lws_fds) < 0)
        return 1;
    tm_node_hooks hooks = {node_stop_taking, node_live_visits, node_drained, app};
    app->node = tm_node_new(&app->cfg, app->port, &hooks);
    if (start_cluster(app) < 0)
        return 1;
    retention_sweep(app);
    g_timeout_add_seconds(3600, retention_sweep, app);
    tm_signaling_ready(app->sig);
    g_unix_signal_add(SIGINT, on_sigint, app);
    g_unix_signal_add(SIGTERM, on_sigterm, app);
    tm_info("server.listening", "port=%d listen=%s node=%s public_url=%s data_dir=%s", app->port,
            app->cfg.listen, tm_node_id(app->node), tm_node_public_url(app->node),
            app->cfg.data_dir);
    if (app->cfg.demo)
        tm_demo_print(app);
    g_main_loop_run(app->loop);
    tm_info("server.stopped", "uptime_s=%lld", (long long)((tm_now_ms() - app->started_ms) / 1000));
    return 0;
}

/* On a loop that is not its own, lws closes in two calls: the first closes
 * every connection and starts closing its libuv handles, whose close
 * callbacks need the loop to run; the second frees the context (and clears
 * app->lws through info.pcontext). */
static void stop_lws(tm_app *app)
{
    /* A context whose vhost never bound unloads its event-lib plugin at the
     * first destroy while its libuv handles still close into it: the process
     * is exiting, so it is left to the exit rather than crash in the drain. */
    if (app->lws_unbound)
        return;
    if (app->lws)
        lws_context_destroy(app->lws);
    if (!app->uv_source)
        return;
    bool drained = tm_uv_drain(&app->uv, 2000);
    if (app->lws)
        lws_context_destroy(app->lws);
    drained = tm_uv_drain(&app->uv, 2000) && drained;
    if (!drained)
        tm_warn("server.uv_not_drained", "timeout_ms=2000");
    g_source_destroy(app->uv_source);
    g_source_unref(app->uv_source);
    app->uv_source = NULL;
    if (uv_loop_close(&app->uv) != 0)
        tm_warn("server.uv_busy_at_close", "reason=handles_left");
}

static void shutdown_app(tm_app *app)
{
    /* Signaling leaves the cluster before the connections close: a stop is
     * not its waiting patients leaving, so no node is told they are away
     * (one write and one bus event each, cleared again by the hello with
     * which their page comes back here or on another node). */
    if (app->sig)
        tm_signaling_set_cluster(app->sig, NULL);
    /* Connections first (they reference signaling), then what they used. */
    stop_lws(app);
    tm_web_static_free(app->web);
    tm_node_free(app->node);
    tm_cluster_free(app->cluster); /* leaves the registry */
    tm_signaling_free(app->sig);
    tm_conn_limit_free(app->conn_limit);
    tm_media_free(app->media);
    tm_sealer_free(app->sealer);
    tm_visit_record_free(app->record); /* after media: it receives recording results */
    tm_review_free(app->review);
    tm_feed_profiles_free(app->profiles); /* the webhook among them: app->feed */
    app->feed = NULL;
    tm_feed_free(app->messaging); /* after the feed, which kicks it */
    tm_jwt_verifier_free(app->jwt);
    tm_store_free(app->store);
    tm_seal_key_free(app->seal_key);
    if (app->loop)
        g_main_loop_unref(app->loop);
    g_free(app->jwt_secret);
    g_free(app->csp);
    OPENSSL_cleanse(app->rec_key, sizeof(app->rec_key));
    tm_config_clear(&app->cfg);
}

int main(int argc, char **argv)
{
    tm_app app;
    memset(&app, 0, sizeof(app));
    app.started_ms = tm_now_ms();
    signal(SIGPIPE, SIG_IGN);
    /* The review render child (review.c starts it): no config, no data dir
     * of its own; its job comes on stdin. */
    if (argc == 2 && strcmp(argv[1], "render-review") == 0)
        tm_review_render_main();
    int first_arg = argc;
    char *err = NULL;
    int rc = tm_config_load(&app.cfg, argc, argv, &first_arg, &err);
    if (app.cfg.action == TM_CONFIG_HELP) {
        printf("usage: telemed-server [options] [token --sub ID --role ROLE ... |"
               " decrypt-recording IN OUT | verify-visit ID [--json]]\n\n");
        tm_config_print_help(stdout);
        tm_config_clear(&app.cfg);
        return 0;
    }
    if (app.cfg.action == TM_CONFIG_PRINT) {
        tm_config_print_sample(stdout);
        tm_config_clear(&app.cfg);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "telemed-server: %s\n", err ? err : "bad configuration");
        g_free(err);
        return 2;
    }
    if (app.cfg.action == TM_CONFIG_CHECK) {
        puts("config ok");
        tm_config_clear(&app.cfg);
        return 0;
    }
    tm_config_resolve_paths(&app.cfg);
    tm_log_level level = TM_LOG_INFO;
    tm_log_parse_level(app.cfg.log_level, &level);
    tm_log_set_level(level);
    int status = 1;
    if (make_dirs(&app) < 0 || load_jwt_secret(&app) < 0)
        goto out;
    if (first_arg < argc) {
        if (strcmp(argv[first_arg], "token") == 0) {
            status = tm_token_main(app.jwt_secret, argc - first_arg, argv + first_arg);
        } else if (strcmp(argv[first_arg], "decrypt-recording") == 0) {
            status = decrypt_main(&app, argc - first_arg, argv + first_arg);
        } else if (strcmp(argv[first_arg], "verify-visit") == 0) {
            status = verify_main(&app, argc - first_arg, argv + first_arg);
        } else {
            fprintf(stderr, "telemed-server: unknown command '%s' (try --help)\n", argv[first_arg]);
            status = 2;
        }
        goto out;
    }
    status = run(&app);
out:
    shutdown_app(&app);
    return status;
}
