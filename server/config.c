/*
 * config.c - the one home of telemed's settings.
 *
 * Every option is one row of options[] below: name (= struct field = key in the
 * file; TELEMED_<NAME> in the environment; --name on the command line), type,
 * offset, bounds, default and a one-line help. Defaults, the file loader, the
 * environment and flag overrides, --help, --print-config and --check-config are
 * all driven from that table, so adding an option is one struct field plus one
 * row. Cross-field rules live in check_cross() at the end.
 *
 * Runs once on the control loop at start; keeps no state of its own.
 */
#include "telemed/config.h"
#include "config_check.h"
#include "telemed/common.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifndef TM_WEB_ROOT
#define TM_WEB_ROOT "web-client"
#endif

#define GROUP "telemed"
#define ENV_PREFIX "TELEMED_"

typedef enum { OPT_SECTION, OPT_STR, OPT_INT, OPT_BOOL } opt_type;

/* A string validator: returns NULL if value is fine, else a new message. */
typedef char *(*opt_check)(const char *value);

enum {
    OPT_REQUIRED = 1 << 0, /* a string that must not be empty */
    OPT_SECRET = 1 << 1,   /* never echoed in error messages */
    OPT_NO_FLAG = 1 << 2,  /* file or environment only: argv is readable by all in ps */
};

typedef struct config_option {
    const char *name;
    size_t offset;
    long long min, max;
    long long def_num; /* int and bool */
    const char *def_str;
    opt_check check;
    const char *help;
    opt_type type;
    unsigned flags;
} config_option;

#define SECTION(title)                                                                             \
    {                                                                                              \
        .name = title, .type = OPT_SECTION                                                         \
    }
#define STR(f, def, fl, chk, h)                                                                    \
    {                                                                                              \
        .name = #f, .type = OPT_STR, .offset = offsetof(tm_config, f), .def_str = def,             \
        .check = chk, .flags = fl, .help = h                                                       \
    }
#define INT(f, def, lo, hi, h)                                                                     \
    {                                                                                              \
        .name = #f, .type = OPT_INT, .offset = offsetof(tm_config, f), .min = lo, .max = hi,       \
        .def_num = def, .help = h                                                                  \
    }
#define BOOL(f, def, h)                                                                            \
    {                                                                                              \
        .name = #f, .type = OPT_BOOL, .offset = offsetof(tm_config, f), .def_num = def, .help = h  \
    }

/* clang-format off */
static const config_option options[] = {
    SECTION("general"),
    STR(data_dir, "./telemed-data", OPT_REQUIRED, NULL,
        "Directory for the database, TLS files, recordings, JWT secret and feed files."),
    STR(listen, "0.0.0.0", OPT_REQUIRED, NULL, "Address the HTTPS/WSS server listens on."),
    INT(port, 8443, 0, 65535, "HTTPS/WSS port (0 picks a free port)."),
    STR(tls_cert, NULL, 0, NULL,
        "TLS certificate (PEM). Unset: data_dir/tls/server.crt, self-signed on first start."),
    STR(tls_key, NULL, 0, NULL, "TLS private key (PEM). Unset: data_dir/tls/server.key."),
    STR(db, NULL, OPT_SECRET, NULL,
        "SQLite database file, or a postgresql:// URL (PostgreSQL, shared by several nodes;"
        " a password belongs in the config file or PGPASSFILE, not on the command line)."
        " Unset: data_dir/telemed.db."),
    STR(web_root, NULL, 0, NULL, "Directory of the web client. Unset: the one built in."),
    STR(log_level, "info", OPT_REQUIRED, tm__config_check_log_level,
        "Least severe log level written: debug, info, warn or error."),
    BOOL(demo, false, "Start with a demo hospital and print demo login links."),
    STR(hospital_id, "demo-hospital", OPT_REQUIRED, NULL,
        "Hospital id reported to the regulator."),
    STR(hospital_name, "Demo Internet Hospital", OPT_REQUIRED, NULL,
        "Hospital name shown to users."),
    STR(hospital_org_code, NULL, 0, NULL,
        "The hospital's unified organisation code (统一社会信用代码), reported with its visits."),
    STR(hospital_level, NULL, 0, NULL, "The hospital's level (e.g. 3A), as the regulator files it."),
    STR(institutions, NULL, 0, tm__config_check_institutions,
        "The other members of the alliance (医联体) this deployment serves: entries "
        "id|name|org_code|level|kind separated by ';', kind hospital or clinic. The hospital "
        "itself (hospital_id) is the core."),

    SECTION("cluster"),
    STR(node_id, NULL, 0, tm__config_check_node_id,
        "This node's name in logs, /metrics and /healthz: letters, digits, '.', '-', '_', "
        "at most 63. Unset: the host name."),
    STR(public_url, NULL, 0, tm__config_check_http_url,
        "How pages reach this node directly. Unset: https://<listen address or host "
        "name>:<port>."),
    STR(cluster_urls, NULL, 0, tm__config_check_url_list,
        "Comma-separated https URLs of the other nodes (or of the load balancer) that pages "
        "try in turn when this node is gone or draining."),
    INT(drain_timeout_s, 3600, 1, 86400,
        "Longest wait for live visits to end once draining (SIGTERM or the admin call), "
        "seconds; then the process exits anyway."),

    SECTION("identity"),
    STR(jwt_secret, NULL, OPT_SECRET | OPT_NO_FLAG, NULL,
        "HS256 secret; environment or config file only. Unset: jwt_secret_file, else a random "
        "one made and kept in data_dir/jwt.secret, unless jwt_public_keys is set (then HS256 "
        "is refused)."),
    STR(jwt_secret_file, NULL, 0, NULL, "File holding jwt_secret instead."),
    STR(jwt_public_keys, NULL, 0, NULL,
        "Comma-separated PEM public key files for RS256/ES256 tokens."),
    INT(jwt_leeway_s, 30, 0, 600, "Clock skew allowed on token exp/nbf/iat, seconds."),
    INT(jwt_max_lifetime_s, 86400, 60, 2592000,
        "Longest token lifetime accepted (exp - iat, or exp - now without iat), seconds."),

    SECTION("signaling"),
    INT(offer_timeout_s, 30, 5, 600, "Seconds a doctor has to accept an offered patient."),
    INT(grace_s, 60, 1, 3600, "Seconds a dropped participant has to come back."),
    INT(max_frame_bytes, 65536, 1024, 16777216, "Largest signaling frame accepted, bytes."),
    INT(rate_msgs_per_s, 20, 1, 10000, "Signaling messages per second per connection."),
    INT(rate_burst, 60, 1, 100000, "Burst of signaling messages allowed above the rate."),
    INT(avg_visit_s, 600, 30, 7200,
        "Assumed visit length for the estimated wait until real durations exist, seconds."),
    BOOL(allow_first_visits, false,
         "Allow first visits; internet diagnosis is for follow-ups by default."),
    BOOL(supervisor_notice, true, "Tell participants when a supervisor watches."),
    INT(wait_alert_s, 900, 10, 86400, "Alert supervisors when a patient waits this long, seconds."),
    INT(max_participants, 8, 2, 8,
        "Most participants in one visit (patient, attending and invited staff or guests)."),
    INT(invite_timeout_s, 60, 5, 600, "Seconds an invited doctor, nurse or interpreter has to answer."),
    INT(guest_link_ttl_s, 900, 60, 3600, "Default lifetime of a guest link, seconds."),
    INT(max_connections, 20000, 1, 1000000,
        "Most WebSocket connections at once (lowered to fit the open-file limit)."),
    INT(max_unauth_per_addr, 256, 1, 1000000,
        "Most connections from one address that have not authenticated yet; "
        "more are closed at accept."),
    INT(hello_timeout_s, 10, 1, 300,
        "Seconds a new WebSocket has to say hello with a token before it is closed."),
    INT(fanout_threads, 0, 0, 16,
        "Threads that write a queue change to every waiting patient (0: one per core, at most 4; 1: the control loop alone)."),

    SECTION("consent and doctor identity"),
    BOOL(consent_required, true,
         "Patients accept the informed consent (internet diagnosis, recording) to check in."),
    STR(consent_version, "2026.1", OPT_REQUIRED, tm__config_check_consent_version,
        "Version of the consent texts; change it whenever a text changes."),
    STR(consent_dir, NULL, 0, NULL,
        "Directory of the hospital's consent texts (patient.zh-CN.txt, patient.en.txt, "
        "guest.zh-CN.txt, guest.en.txt); a file absent: the built-in text."),
    STR(hospital_phone, NULL, 0, NULL,
        "Phone line offered to patients who will not have a recorded video visit."),
    INT(doctor_verify_window_s, 43200, 0, 604800,
        "A doctor accepts a visit only this many seconds after proving who they are "
        "(the token's auth_time, or doctor_verify_url); 0: no check."),
    STR(doctor_verify_amr, NULL, 0, NULL,
        "Comma-separated amr methods that count as that proof (e.g. face); unset: any."),
    STR(doctor_verify_url, NULL, 0, tm__config_check_http_url,
        "Hospital endpoint asked at accept time when the token's proof is missing or old."),
    STR(doctor_verify_ca, NULL, 0, NULL, "CA file to verify that endpoint (unset: system store)."),
    INT(doctor_verify_timeout_ms, 5000, 100, 60000,
        "Longest wait for that endpoint's answer, ms; no answer refuses the accept."),

    SECTION("media"),
    INT(media_workers, 0, 0, 64, "Media worker threads (0: one per core)."),
    STR(media_addresses, "127.0.0.1", OPT_REQUIRED, NULL,
        "Comma-separated local addresses for ICE host candidates."),
    STR(media_public_ip, NULL, 0, NULL,
        "Public address advertised instead of the local one (NAT 1:1)."),
    INT(media_port_min, 0, 0, 65535, "Lowest UDP port for media (0: any)."),
    INT(media_port_max, 0, 0, 65535, "Highest UDP port for media (0: any)."),
    BOOL(media_direct_io, true,
         "Send and receive media on the selected ICE pair's own socket beside libnice (off: all through libnice)."),
    BOOL(media_send_batch, true,
         "With media_direct_io: what one receive batch sends to a peer goes in one sendmmsg (off: a sendto each)."),
    BOOL(media_rx_epoll, false,
         "With media_direct_io: a worker's media sockets in one epoll set, one fd in its poll (off: a GLib source per socket)."),
    BOOL(media_dtls_shed, true,
         "Free a peer's DTLS state 5 s after its SRTP flows, keeping only what reads its close_notify (off: kept for the session)."),
    BOOL(media_srtp_nettle, true,
         "SRTP's AES-CM and HMAC-SHA1 on Nettle, AES-GCM on OpenSSL (off: libsrtp's own ciphers)."),
    BOOL(media_transport_cc, false,
         "Answer transport-cc: senders get per-packet arrival feedback, and the server estimates each receiver's downlink from its feedback (off: REMB and receiver reports only)."),
    INT(media_max_candidates, 20, 1, 100,
        "Most remote ICE candidates a peer may give per ICE session; more are refused."),
    STR(media_candidate_networks, NULL, 0, tm__config_check_networks,
        "Comma-separated networks (CIDR) whose addresses get ICE checks besides the scopes of media_addresses."),
    INT(media_ice_pacing_ms, 50, 20, 1000, "Interval between one peer's ICE connectivity checks, ms."),
    STR(stun_urls, NULL, 0, NULL, "Comma-separated STUN URLs given to clients."),
    STR(turn_urls, NULL, 0, NULL, "Comma-separated TURN URLs given to clients."),
    STR(turn_secret, NULL, OPT_SECRET, NULL,
        "Shared secret for TURN REST credentials (coturn use-auth-secret)."),
    INT(turn_ttl_s, 86400, 60, 604800, "Lifetime of minted TURN credentials, seconds."),

    SECTION("recording"),
    BOOL(recording, true, "Record every consultation."),
    STR(recording_dir, NULL, 0, NULL, "Directory for recordings. Unset: data_dir/recordings."),
    BOOL(recording_encrypt, true,
         "Encrypt recordings at rest (AES-256-GCM). Turning it off is logged as a warning."),
    STR(recording_key, NULL, OPT_SECRET | OPT_NO_FLAG, tm__config_check_hex_key,
        "AES-256 key for recordings, 64 hex chars; environment or config file only. "
        "Unset: recording_key_file, else data_dir/recording.key (made on first start)."),
    STR(recording_key_file, NULL, 0, NULL, "File holding recording_key instead."),
    INT(review_render_max, 1, 0, 8,
        "Review renditions (grid video, mixed audio) made at once, at low priority; 0: none."),
    INT(review_attempts, 3, 1, 10,
        "Tries at a review rendition before it stays failed (each failure stays on record)."),
    INT(review_retry_s, 60, 1, 86400,
        "Wait before retrying a failed review rendition, s; four times as long each time after."),
    INT(review_width, 640, 160, 1920, "Width of a review rendition's video grid, px."),
    INT(review_height, 360, 120, 1080, "Height of a review rendition's video grid, px."),
    INT(review_video_kbps, 500, 100, 4000, "VP8 bitrate of a review rendition, kbit/s."),
    INT(retention_recordings_days, 1095, 1095, 36500, "Keep recordings this many days (3 years floor)."),
    INT(retention_records_days, 5475, 5475, 73000, "Keep visit records this many days (15 years floor)."),
    INT(retention_audit_days, 1095, 183, 36500, "Keep the audit log this many days (6 months floor)."),
    INT(alert_loss_pct, 5, 1, 100, "Alert supervisors above this packet loss, percent."),
    INT(alert_freeze_ms, 2000, 100, 60000,
        "Tell the other participants and alert supervisors when video stalls this long, ms."),
    INT(interruption_min_ms, 2000, 500, 600000,
        "Note in the visit record a participant's media gone this long and back, ms."),

    SECTION("tamper-evident record"),
    STR(seal_key_file, NULL, 0, NULL,
        "PEM private key that seals finished visit records. Unset: data_dir/seal.key, made "
        "on first start (0600)."),
    STR(seal_algorithm, "ecdsa-p256", OPT_REQUIRED, tm__config_check_seal_algorithm,
        "Seal signature: ecdsa-p256 (SHA-256) or sm2 (SM3, GB/T 32918)."),
    INT(seal_after_s, 86400, 1, 2592000,
        "A visit over without a signed note is sealed this long after its end, seconds."),

    SECTION("regulator feed"),
    STR(feed_url, NULL, 0, NULL,
        "HTTPS endpoint of the regulator. Unset: NDJSON files in data_dir/feed/."),
    STR(feed_secret, NULL, OPT_SECRET, NULL,
        "HMAC-SHA256 key for the X-Telemed-Signature header."),
    STR(feed_ca, NULL, 0, NULL, "CA file to verify the endpoint."),
    STR(feed_client_cert, NULL, 0, NULL, "Client certificate for mutual TLS."),
    STR(feed_client_key, NULL, 0, NULL, "Client key for mutual TLS."),
    INT(feed_timeout_ms, 10000, 100, 600000, "Timeout of one delivery request, ms."),
    INT(feed_batch, 100, 1, 10000, "Most events read from the outbox at once."),
    INT(feed_backoff_base_ms, 1000, 10, 600000, "First retry delay, ms (doubles, with jitter)."),
    INT(feed_backoff_max_ms, 300000, 100, 86400000, "Longest retry delay, ms."),
    STR(feed_profiles, "webhook", OPT_REQUIRED, tm__config_check_profiles,
        "Delivery profiles, comma-separated: webhook (real time), tianjin (nightly upload)."),
    STR(institution_feeds, NULL, OPT_SECRET, tm__config_check_institution_feeds,
        "Alliance members with a delivery profile of their own, whose visits go there instead of "
        "to feed_profiles: entries institution|profile|url|secret[|app_key] separated by ';'. "
        "webhook: secret is the HMAC key (may be empty); tianjin: the app secret (32 hex) and "
        "app key. The institution must be declared in institutions."),

    /* followup18 */
    SECTION("follow-ups and messaging"),
    INT(noshow_after_s, 1800, 0, 604800,
        "A booked appointment whose slot (a date window's end) passed this many seconds ago "
        "without a check-in becomes a no-show."),
    INT(appointment_due_before_s, 86400, 60, 1209600,
        "appointment.due goes out this many seconds before an appointment's slot."),
    INT(appointment_sweep_s, 60, 1, 3600,
        "How often the no-show and due sweep runs, seconds."),
    STR(messaging_url, NULL, 0, tm__config_check_http_url,
        "The hospital's messaging system (SMS, WeChat): appointment, consultation and referral "
        "events go there, signed like the feed. Unset: none."),
    STR(messaging_secret, NULL, OPT_SECRET, NULL,
        "HMAC-SHA256 key for the messaging requests' X-Telemed-Signature header."),
    STR(messaging_ca, NULL, 0, NULL, "CA file to verify the messaging endpoint."),

    SECTION("tianjin profile"),
    STR(tianjin_url, NULL, 0, NULL, "Tianjin platform endpoint (.../openapi/api)."),
    STR(tianjin_app_key, NULL, 0, NULL, "appKey given by the platform (X-Ca-Key)."),
    STR(tianjin_app_secret, NULL, OPT_SECRET, tm__config_check_sm4_key,
        "appSecret given by the platform: 32 hex chars, the SM4 key."),
    STR(tianjin_iv, "abcd0863ef9087ced675985321bedf67", OPT_REQUIRED, tm__config_check_sm4_key,
        "SM4-CBC IV, 32 hex chars (the platform SDK's fixed IV)."),
    STR(tianjin_padding, "iso7816", OPT_REQUIRED, tm__config_check_padding,
        "SM4 padding: iso7816 (the platform SDK's) or pkcs7."),
    STR(tianjin_service_id, "his.provinceDataUploadService", OPT_REQUIRED, NULL,
        "X-Service-Id header."),
    STR(tianjin_visit_method, "uploadReferralIndicators", OPT_REQUIRED, NULL,
        "X-Service-Method of video follow-up records."),
    STR(tianjin_rating_method, "uploadBusinessInfoAfter", OPT_REQUIRED, NULL,
        "X-Service-Method of rating records."),
    STR(tianjin_checkin_method, "pushMedicalDispute", OPT_REQUIRED, NULL,
        "X-Service-Method of the daily check-in (an empty array)."),
    STR(tianjin_organ_id, NULL, 0, NULL, "organID: the hospital's unified organisation code."),
    STR(tianjin_organ_name, NULL, 0, NULL, "organName (omitted when unset)."),
    STR(tianjin_unit_id, NULL, 0, NULL, "unitID given by the platform (omitted when unset)."),
    STR(tianjin_business_type, "4", OPT_REQUIRED, NULL,
        "businessType of a rating record (4: online follow-up)."),
    STR(tianjin_upload_at, "02:00", OPT_REQUIRED, tm__config_check_clock,
        "Time of the nightly upload of the previous day, HH:MM[:SS], platform time."),
    INT(tianjin_utc_offset_min, 480, -720, 840,
        "The platform's time zone as minutes east of UTC (days, dates and upload time)."),
    INT(tianjin_catchup_days, 7, 1, 366,
        "Most past days staged at once after the server was stopped over upload times."),
    INT(tianjin_batch, 100, 1, 1000, "Most records per upload request."),
    INT(tianjin_deadline_h, 24, 1, 168,
        "Hours after a day ends by which its records must be accepted and the day checked in "
        "(the compliance figures); the description says T+1."),
    BOOL(tianjin_send_unanswered, true,
         "Also upload visits that ended before a doctor answered (answerFlag 0)."),
    STR(tianjin_ca, NULL, 0, NULL, "CA file to verify the platform (unset: system store)."),

    SECTION("figures"),
    STR(figures_time_zone, "Asia/Shanghai", OPT_REQUIRED, tm__config_check_time_zone,
        "Time zone (IANA name) whose midnights start the days, weeks and months of the doctor "
        "and department figures."),
};
/* clang-format on */

static char **str_field(tm_config *cfg, const config_option *o)
{
    return (char **)(void *)((char *)cfg + o->offset);
}

static int *int_field(tm_config *cfg, const config_option *o)
{
    return (int *)(void *)((char *)cfg + o->offset);
}

static bool *bool_field(tm_config *cfg, const config_option *o)
{
    return (bool *)(void *)((char *)cfg + o->offset);
}

static const config_option *find_option(const char *name)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        if (options[i].type != OPT_SECTION && strcmp(options[i].name, name) == 0)
            return &options[i];
    }
    return NULL;
}

static const char *type_name(opt_type t)
{
    return t == OPT_INT ? "INT" : t == OPT_BOOL ? "BOOL" : "STR";
}

static char *env_name(const char *name)
{
    char *up = g_ascii_strup(name, -1);
    char *env = g_strconcat(ENV_PREFIX, up, NULL);
    g_free(up);
    return env;
}

static char *flag_name(const char *name)
{
    char *f = g_strdup(name);
    g_strdelimit(f, "_", '-');
    return f;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < TM_ARRAY_LEN(yes); i++) {
        if (g_ascii_strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (g_ascii_strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return TM_EINVAL;
}

/* Strict decimal: no blanks, no trailing junk, no overflow. */
static int parse_ll(const char *s, long long *out)
{
    if (!*s || g_ascii_isspace(*s))
        return TM_EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return TM_EINVAL;
    *out = v;
    return 0;
}

/* Set one option from its text form. origin says where it came from, for the message.
 * On error returns TM_EINVAL and *err names the key, the bad value and the origin. */
static int option_set(tm_config *cfg, const config_option *o, const char *value, const char *origin,
                      char **err)
{
    char *why = NULL;
    const char *shown = (o->flags & OPT_SECRET) ? "(secret)" : value;
    switch (o->type) {
    case OPT_STR: {
        if (!*value && (o->flags & OPT_REQUIRED)) {
            why = g_strdup("must not be empty");
            break;
        }
        if (*value && o->check) {
            why = o->check(value);
            if (why)
                break;
        }
        char **f = str_field(cfg, o);
        g_free(*f);
        *f = *value ? g_strdup(value) : NULL;
        return 0;
    }
    case OPT_INT: {
        long long v;
        if (parse_ll(value, &v) != 0) {
            why = g_strdup_printf("'%s' is not an integer", shown);
            break;
        }
        if (v < o->min || v > o->max) {
            why = g_strdup_printf("%lld is out of bounds %lld..%lld", v, o->min, o->max);
            break;
        }
        *int_field(cfg, o) = (int)v;
        return 0;
    }
    case OPT_BOOL: {
        bool b;
        if (parse_bool(value, &b) != 0) {
            why = g_strdup_printf("'%s' is not a boolean (true or false)", shown);
            break;
        }
        *bool_field(cfg, o) = b;
        return 0;
    }
    case OPT_SECTION:
        break;
    }
    *err = g_strdup_printf("%s: %s (%s)", o->name, why ? why : "bad value", origin);
    g_free(why);
    return TM_EINVAL;
}

static void set_defaults(tm_config *cfg)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        const config_option *o = &options[i];
        switch (o->type) {
        case OPT_STR:
            *str_field(cfg, o) = g_strdup(o->def_str);
            break;
        case OPT_INT:
            *int_field(cfg, o) = (int)o->def_num;
            break;
        case OPT_BOOL:
            *bool_field(cfg, o) = o->def_num != 0;
            break;
        case OPT_SECTION:
            break;
        }
    }
}

void tm_config_clear(tm_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        if (options[i].type == OPT_STR)
            g_free(*str_field(cfg, &options[i]));
    }
    g_free(cfg->config_path);
    memset(cfg, 0, sizeof(*cfg));
}

static int load_file(tm_config *cfg, const char *path, char **err)
{
    GError *gerr = NULL;
    GKeyFile *kf = g_key_file_new();
    char **groups = NULL, **keys = NULL;
    char *origin = g_strdup_printf("in %s", path);
    int rc = TM_EINVAL;

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &gerr)) {
        *err = g_strdup_printf("config file %s: %s", path, gerr->message);
        goto fail;
    }
    groups = g_key_file_get_groups(kf, NULL);
    for (size_t g = 0; groups[g]; g++) {
        if (strcmp(groups[g], GROUP) != 0) {
            *err = g_strdup_printf("config file %s: unknown group [%s] (options go in [" GROUP "])",
                                   path, groups[g]);
            goto fail;
        }
    }
    if (!g_key_file_has_group(kf, GROUP)) {
        rc = 0;
        goto fail;
    }
    keys = g_key_file_get_keys(kf, GROUP, NULL, NULL);
    for (size_t k = 0; keys && keys[k]; k++) {
        const config_option *o = find_option(keys[k]);
        if (!o) {
            *err = g_strdup_printf("%s: unknown key (in %s)", keys[k], path);
            goto fail;
        }
        /* Strings get GKeyFile's unescaping; ints and bools go through our own
         * parsers so that every source accepts the same spellings. */
        char *value = o->type == OPT_STR ? g_key_file_get_string(kf, GROUP, keys[k], &gerr)
                                         : g_key_file_get_value(kf, GROUP, keys[k], &gerr);
        if (!value) {
            *err = g_strdup_printf("%s: %s (in %s)", keys[k], gerr->message, path);
            goto fail;
        }
        int r = option_set(cfg, o, value, origin, err);
        g_free(value);
        if (r != 0)
            goto fail;
    }
    rc = 0;
fail:
    if (gerr)
        g_error_free(gerr);
    g_strfreev(keys);
    g_strfreev(groups);
    g_key_file_free(kf);
    g_free(origin);
    return rc;
}

static int load_env(tm_config *cfg, char **err)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        const config_option *o = &options[i];
        if (o->type == OPT_SECTION)
            continue;
        char *env = env_name(o->name);
        const char *value = g_getenv(env);
        int rc = 0;
        if (value) {
            char *origin = g_strdup_printf("from %s", env);
            rc = option_set(cfg, o, value, origin, err);
            g_free(origin);
        }
        g_free(env);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A flag seen on the command line, applied after the file and the environment. */
typedef struct pending_flag {
    const config_option *opt;
    const char *value; /* borrowed from argv or a literal */
} pending_flag;

/* Walks argv once: records actions, --config and option flags, stops at the first
 * positional word. Does not touch the option fields. */
static int parse_argv(tm_config *cfg, int argc, char **argv, GArray *pending, char **cfg_path,
                      int *first_arg, char **err)
{
    int i = 1;
    int rc = TM_EINVAL;
    char *name = NULL;
    bool help = false;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(arg, "-h") == 0) {
            help = true;
            continue;
        }
        if (arg[0] != '-' || arg[1] == '\0')
            break; /* positional: a subcommand and its words */
        if (arg[1] != '-') {
            *err = g_strdup_printf("%s: unknown flag", arg);
            goto fail;
        }
        /* Messages show the flag without its value: it may be a secret. */
        const char *eq = strchr(arg + 2, '=');
        int flen = eq ? (int)(eq - arg) : (int)strlen(arg);
        g_free(name);
        name = eq ? g_strndup(arg + 2, (gsize)(eq - (arg + 2))) : g_strdup(arg + 2);
        g_strdelimit(name, "-", '_');
        const char *value = eq ? eq + 1 : NULL;

        int action = -1;
        if (strcmp(name, "help") == 0)
            action = TM_CONFIG_HELP;
        else if (strcmp(name, "print_config") == 0)
            action = TM_CONFIG_PRINT;
        else if (strcmp(name, "check_config") == 0)
            action = TM_CONFIG_CHECK;
        if (action >= 0) {
            if (value) {
                *err = g_strdup_printf("%.*s: takes no value", flen, arg);
                goto fail;
            }
            if (action == TM_CONFIG_HELP)
                help = true;
            else
                cfg->action = action;
            continue;
        }

        const config_option *o = find_option(name);
        bool negated = false;
        if (!o && strcmp(name, "config") != 0 && g_str_has_prefix(name, "no_")) {
            o = find_option(name + 3);
            if (o && o->type == OPT_BOOL && !value)
                negated = true;
            else
                o = NULL;
        }
        if (!o && strcmp(name, "config") != 0) {
            *err = g_strdup_printf("%.*s: unknown flag", flen, arg);
            goto fail;
        }
        if (o && (o->flags & OPT_NO_FLAG)) {
            *err = g_strdup_printf("%s: not accepted on the command line, where every user can "
                                   "read it (ps); use %s_file or the environment",
                                   o->name, o->name);
            goto fail;
        }
        if (negated || (o && o->type == OPT_BOOL && !value)) {
            pending_flag p = {o, negated ? "false" : "true"};
            g_array_append_val(pending, p);
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                *err = g_strdup_printf("%s: needs a value", arg);
                goto fail;
            }
            value = argv[++i];
        }
        if (!o) {
            g_free(*cfg_path);
            *cfg_path = g_strdup(value);
            continue;
        }
        pending_flag p = {o, value};
        g_array_append_val(pending, p);
    }
    rc = 0;
fail:
    /* --help wins over the other actions: it is what a confused user types last. */
    if (help)
        cfg->action = TM_CONFIG_HELP;
    *first_arg = i < argc ? i : argc;
    g_free(name);
    return rc;
}

/* Rules that join two options. Each names both keys. */
/* The tianjin profile cannot sign, encrypt or fill organID without these. */
static int check_tianjin(const tm_config *c, char **err)
{
    if (!c->feed_profiles || !strstr(c->feed_profiles, "tianjin"))
        return 0;
    const char *missing = !c->tianjin_url          ? "tianjin_url"
                          : !c->tianjin_app_key    ? "tianjin_app_key"
                          : !c->tianjin_app_secret ? "tianjin_app_secret"
                          : !c->tianjin_organ_id   ? "tianjin_organ_id"
                                                   : NULL;
    if (missing) {
        *err = g_strdup_printf("%s: required by feed_profiles=tianjin", missing);
        return TM_EINVAL;
    }
    return 0;
}

static int add_member_id(const char *id, const char *name, const char *org_code, const char *level,
                         const char *kind, void *user)
{
    (void)name, (void)org_code, (void)level, (void)kind;
    g_hash_table_add(user, g_strdup(id));
    return 0;
}

static int member_declared(const char *institution, const char *profile, const char *url,
                           const char *secret, const char *app_key, void *user)
{
    (void)profile, (void)url, (void)secret, (void)app_key;
    return g_hash_table_contains(user, institution) ? 0 : TM_ENOTFOUND;
}

/* A member's own profile routes by its departments' institution id: one
 * not declared would never match a visit, so its events would go nowhere
 * it was meant to. */
static int check_institution_feeds(const tm_config *c, char **err)
{
    if (!c->institution_feeds)
        return 0;
    GHashTable *ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    int rc = tm_config_foreach_institution(c->institutions, add_member_id, ids, err);
    if (rc == 0)
        rc = tm_config_foreach_institution_feed(c->institution_feeds, member_declared, ids, err);
    g_hash_table_unref(ids);
    if (rc == TM_ENOTFOUND)
        *err = g_strdup("institution_feeds: every institution must be declared in institutions "
                        "(the core, hospital_id, is served by feed_profiles)");
    return rc < 0 ? TM_EINVAL : 0;
}

static int check_cross(const tm_config *c, char **err)
{
    if (c->media_port_min && c->media_port_max && c->media_port_min > c->media_port_max) {
        *err = g_strdup_printf("media_port_min: %d is above media_port_max %d", c->media_port_min,
                               c->media_port_max);
        return TM_EINVAL;
    }
    if (c->feed_backoff_base_ms > c->feed_backoff_max_ms) {
        *err = g_strdup_printf("feed_backoff_base_ms: %d is above feed_backoff_max_ms %d",
                               c->feed_backoff_base_ms, c->feed_backoff_max_ms);
        return TM_EINVAL;
    }
    if (c->jwt_secret && c->jwt_secret_file) {
        *err = g_strdup("jwt_secret: set either jwt_secret or jwt_secret_file, not both");
        return TM_EINVAL;
    }
    if (c->recording_key && c->recording_key_file) {
        *err = g_strdup("recording_key: set either recording_key or recording_key_file, not both");
        return TM_EINVAL;
    }
    if (!c->tls_cert != !c->tls_key) {
        *err = g_strdup("tls_cert: tls_cert and tls_key must be set together");
        return TM_EINVAL;
    }
    if (!c->feed_client_cert != !c->feed_client_key) {
        *err =
            g_strdup("feed_client_cert: feed_client_cert and feed_client_key must be set together");
        return TM_EINVAL;
    }
    if (check_institution_feeds(c, err) < 0)
        return TM_EINVAL;
    return check_tianjin(c, err);
}

int tm_config_load(tm_config *cfg, int argc, char **argv, int *first_arg, char **err)
{
    GArray *pending = g_array_new(FALSE, FALSE, sizeof(pending_flag));
    char *path = NULL;
    int first = argc;
    int rc;

    *err = NULL;
    memset(cfg, 0, sizeof(*cfg));
    set_defaults(cfg);

    rc = parse_argv(cfg, argc, argv, pending, &path, &first, err);
    if (first_arg)
        *first_arg = first;
    if (rc != 0)
        goto fail;
    if (cfg->action == TM_CONFIG_HELP || cfg->action == TM_CONFIG_PRINT)
        goto done;

    if (!path) {
        const char *env = g_getenv(ENV_PREFIX "CONFIG");
        if (env && *env)
            path = g_strdup(env);
    }
    if (path && *path) { /* an empty --config= means no file, whatever TELEMED_CONFIG says */
        if ((rc = load_file(cfg, path, err)) != 0)
            goto fail;
        cfg->config_path = path;
        path = NULL;
    }
    if ((rc = load_env(cfg, err)) != 0)
        goto fail;
    for (guint i = 0; i < pending->len; i++) {
        pending_flag *p = &g_array_index(pending, pending_flag, i);
        char *flag = flag_name(p->opt->name);
        char *origin = g_strdup_printf("flag --%s", flag);
        g_free(flag);
        rc = option_set(cfg, p->opt, p->value, origin, err);
        g_free(origin);
        if (rc != 0)
            goto fail;
    }
    if ((rc = check_cross(cfg, err)) != 0)
        goto fail;
done:
    g_free(path);
    g_array_free(pending, TRUE);
    return 0;
fail:
    g_free(path);
    g_array_free(pending, TRUE);
    int action = cfg->action;
    tm_config_clear(cfg);
    cfg->action = action;
    return rc ? rc : TM_EINVAL;
}

static void derive(char **field, const char *data_dir, const char *rel)
{
    if (!*field)
        *field = g_build_filename(data_dir, rel, NULL);
}

/* The host name as an id: a character ids do not take becomes '-', so a
 * host named oddly still starts (the log says which id it got). */
bool tm_config_db_shared(const tm_config *cfg)
{
    return cfg->db &&
           (g_str_has_prefix(cfg->db, "postgresql://") || g_str_has_prefix(cfg->db, "postgres://"));
}

static char *host_node_id(void)
{
    char *id = g_strndup(g_get_host_name(), 63);
    for (char *c = id; *c; c++)
        if (!g_ascii_isalnum(*c) && *c != '-' && *c != '_' && *c != '.')
            *c = '-';
    if (!*id) {
        g_free(id);
        id = g_strdup("node");
    }
    return id;
}

void tm_config_resolve_paths(tm_config *cfg)
{
    if (!cfg->node_id)
        cfg->node_id = host_node_id();
    const char *dd = cfg->data_dir ? cfg->data_dir : ".";
    derive(&cfg->tls_cert, dd, "tls/server.crt");
    derive(&cfg->tls_key, dd, "tls/server.key");
    derive(&cfg->db, dd, "telemed.db");
    derive(&cfg->recording_dir, dd, "recordings");
    derive(&cfg->seal_key_file, dd, "seal.key");
    if (!cfg->web_root)
        cfg->web_root = g_strdup(TM_WEB_ROOT);
}

static char *default_text(const config_option *o)
{
    switch (o->type) {
    case OPT_STR:
        return o->def_str ? g_strdup_printf("\"%s\"", o->def_str) : g_strdup("unset");
    case OPT_INT:
        return g_strdup_printf("%lld, %lld..%lld", o->def_num, o->min, o->max);
    case OPT_BOOL:
        return g_strdup(o->def_num ? "true" : "false");
    case OPT_SECTION:
        break;
    }
    return g_strdup("");
}

void tm_config_print_help(FILE *out)
{
    fprintf(out, "Usage: telemed-server [OPTION...] [COMMAND [ARG...]]\n"
                 "\n"
                 "Options are read from, weakest first: defaults, the config file, the\n"
                 "environment (TELEMED_<NAME>), and these flags. Flags take --name=VALUE or\n"
                 "--name VALUE; booleans take --name or --no-name.\n"
                 "\n"
                 "  --config=PATH        config file (group [" GROUP "]); also TELEMED_CONFIG\n"
                 "  --check-config       load and validate the configuration, then exit\n"
                 "  --print-config       print a sample config file with every option\n"
                 "  -h, --help           this text\n");
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        const config_option *o = &options[i];
        if (o->type == OPT_SECTION) {
            fprintf(out, "\n%c%s:\n", g_ascii_toupper(o->name[0]), o->name + 1);
            continue;
        }
        char *flag = flag_name(o->name);
        char *env = env_name(o->name);
        char *def = default_text(o);
        if (o->type == OPT_BOOL)
            fprintf(out, "  --[no-]%s\n", flag);
        else if (o->flags & OPT_NO_FLAG)
            fprintf(out, "  %s=%s (no flag)\n", env, type_name(o->type));
        else
            fprintf(out, "  --%s=%s\n", flag, type_name(o->type));
        fprintf(out, "      %s\n      (default %s; %s)\n", o->help, def, env);
        g_free(def);
        g_free(env);
        g_free(flag);
    }
}

void tm_config_print_sample(FILE *out)
{
    /* A scratch key file does the escaping of string values for us. */
    GKeyFile *kf = g_key_file_new();
    fprintf(out, "# telemed-server configuration (telemed-server --config=PATH).\n"
                 "# Every option with its default; lines starting with # are comments.\n"
                 "# Each option can also be set by TELEMED_<NAME> in the environment or\n"
                 "# --name=value on the command line, which win over this file.\n"
                 "\n[" GROUP "]\n");
    for (size_t i = 0; i < TM_ARRAY_LEN(options); i++) {
        const config_option *o = &options[i];
        if (o->type == OPT_SECTION) {
            fprintf(out, "\n# ---- %s ----\n", o->name);
            continue;
        }
        fprintf(out, "\n# %s\n", o->help);
        switch (o->type) {
        case OPT_STR:
            if (!o->def_str) {
                fprintf(out, "#%s =\n", o->name);
                break;
            }
            g_key_file_set_string(kf, GROUP, o->name, o->def_str);
            char *v = g_key_file_get_value(kf, GROUP, o->name, NULL);
            fprintf(out, "%s = %s\n", o->name, v ? v : "");
            g_free(v);
            break;
        case OPT_INT:
            fprintf(out, "# range %lld..%lld\n%s = %lld\n", o->min, o->max, o->name, o->def_num);
            break;
        case OPT_BOOL:
            fprintf(out, "%s = %s\n", o->name, o->def_num ? "true" : "false");
            break;
        case OPT_SECTION:
            break;
        }
    }
    g_key_file_free(kf);
}
