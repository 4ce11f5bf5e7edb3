/*
 * config.h - every setting of telemed-server, from one table in server/config.c.
 *
 * Sources, weakest first: built-in defaults < config file (group [telemed] of a
 * GKeyFile, path from --config PATH or TELEMED_CONFIG) < environment
 * (TELEMED_<NAME>, e.g. TELEMED_OFFER_TIMEOUT_S) < command-line flags
 * (--name=value, --name value, --flag, --no-flag; '-' and '_' are the same in
 * flag names). An empty string value unsets an optional string option (NULL).
 *
 * The struct owns its strings (g_strdup/g_free); tm_config_clear frees them.
 * Loaded once by the control loop at start; read-only afterwards, so any thread
 * may read it.
 *
 * Typical use in main():
 *
 *   tm_config cfg; char *err = NULL; int first;
 *   int rc = tm_config_load(&cfg, argc, argv, &first, &err);
 *   if (cfg.action == TM_CONFIG_HELP)  { tm_config_print_help(stdout); exit 0 }
 *   if (cfg.action == TM_CONFIG_PRINT) { tm_config_print_sample(stdout); exit 0 }
 *   if (rc) { fprintf(stderr, "%s\n", err); g_free(err); exit 2 }
 *   if (cfg.action == TM_CONFIG_CHECK) { puts("config ok"); exit 0 }
 *   tm_config_resolve_paths(&cfg);
 */
#ifndef TELEMED_CONFIG_H
#define TELEMED_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

/* What the command line asked for besides running the server. */
enum { TM_CONFIG_RUN = 0, TM_CONFIG_HELP, TM_CONFIG_PRINT, TM_CONFIG_CHECK };

typedef struct tm_config {
    int action; /* TM_CONFIG_RUN, or _HELP, _PRINT, _CHECK from the flags */
    /* general */
    char *config_path;   /* the file loaded, or NULL */
    char *data_dir;      /* default "./telemed-data" */
    char *listen;        /* default "0.0.0.0" */
    int port;            /* default 8443, 0..65535 (0 = pick a free port) */
    char *tls_cert;      /* default NULL -> data_dir/tls/server.crt, self-signed on first start */
    char *tls_key;       /* default NULL -> data_dir/tls/server.key */
    char *db;            /* default NULL -> data_dir/telemed.db */
    char *web_root;      /* default NULL -> compiled-in TM_WEB_ROOT, else "web-client" */
    char *log_level;     /* default "info" (debug, info, warn, error) */
    bool demo;           /* default false */
    char *hospital_id;   /* default "demo-hospital" */
    char *hospital_name; /* default "Demo Internet Hospital" */
    /* the alliance (issue 18): the core's regulator identifiers, and the
     * other members as "id|name|org_code|level|kind; ..." */
    char *hospital_org_code; /* NULL */
    char *hospital_level;    /* NULL */
    char *institutions;      /* NULL: the core alone */
    /* this node among several (docs/cluster.md) */
    char *node_id;       /* NULL -> the host name (tm_config_resolve_paths) */
    char *public_url;    /* NULL -> https://<listen address or host name>:<bound port> */
    char *cluster_urls;  /* NULL: comma-separated https URLs of the other nodes or the LB */
    int drain_timeout_s; /* 3600, 1..86400: longest wait for live visits once draining */
    /* identity */
    char *jwt_secret; /* default NULL: then a random secret is made and kept in data_dir/jwt.secret,
                         unless jwt_public_keys is set (then no HS256 at all); never a flag */
    char *jwt_secret_file;  /* default NULL: a file holding jwt_secret */
    char *jwt_public_keys;  /* comma-separated PEM paths, default NULL */
    int jwt_leeway_s;       /* 30, 0..600 */
    int jwt_max_lifetime_s; /* 86400, 60..2592000 */
    /* signaling */
    int offer_timeout_s; /* 30, 5..600 */
    int grace_s;         /* 60, 1..3600 */
    int max_frame_bytes; /* 65536, 1024..16777216 */
    int rate_msgs_per_s; /* 20, 1..10000 */
    int rate_burst;      /* 60, 1..100000 */
    int avg_visit_s; /* 600, 30..7200: prior for the estimated wait until real durations exist */
    bool
        allow_first_visits; /* default false: internet diagnosis is for follow-ups (REFERENCE.md) */
    bool supervisor_notice; /* default true: participants are told when a supervisor watches */
    int wait_alert_s;       /* 900, 10..86400 */
    int max_participants;   /* 8, 2..8: everyone in one visit, watchers aside */
    int invite_timeout_s;   /* 60, 5..600 */
    int guest_link_ttl_s;   /* 900, 60..3600: a guest link's default lifetime */
    int max_connections;    /* 20000, 1..1000000 */
    int max_unauth_per_addr; /* 256, 1..1000000 */
    int hello_timeout_s;     /* 10, 1..300: a WebSocket without hello is closed after it */
    int fanout_threads;      /* 0 = one per core up to 4, 0..16 */
    /* consent and doctor identity (docs/protocol.md, checkin and visit.accept) */
    bool consent_required;        /* true: checkin needs the current consent */
    char *consent_version;        /* "2026.1" */
    char *consent_dir;            /* NULL: built-in texts */
    char *hospital_phone;         /* NULL */
    int doctor_verify_window_s;   /* 43200, 0..604800 (0: no check) */
    char *doctor_verify_amr;      /* NULL: any method */
    char *doctor_verify_url;      /* NULL: the token alone */
    char *doctor_verify_ca;       /* NULL: system store */
    int doctor_verify_timeout_ms; /* 5000, 100..60000 */
    /* media */
    int media_workers;        /* 0 = one per core, 0..64 */
    char *media_addresses;    /* "127.0.0.1": comma-separated local addresses for host candidates */
    char *media_public_ip;    /* NULL: NAT 1:1 public address advertised instead of the local one */
    int media_port_min;       /* 0 (any), 0..65535 */
    int media_port_max;       /* 0 (any), 0..65535 */
    bool media_direct_io;     /* true: media on the selected pair's socket beside libnice */
    bool media_send_batch;    /* true: one sendmmsg per receive batch and peer (direct path) */
    bool media_dtls_shed;     /* true: a peer's DTLS state freed once its SRTP flows */
    bool media_rx_epoll;      /* true: a worker's media sockets in one epoll set (direct path) */
    bool media_srtp_nettle;   /* true: SRTP ciphers on Nettle/OpenSSL, not libsrtp's own */
    bool media_transport_cc;  /* false: senders get REMB and RRs, no transport-cc feedback */
    int media_max_candidates; /* 20, 1..100: remote ICE candidates per peer and session */
    char *media_candidate_networks; /* NULL: CIDRs checked beyond media_addresses' scopes */
    int media_ice_pacing_ms;        /* 50, 20..1000: interval between a peer's ICE checks */
    char *stun_urls;                /* comma-separated, NULL */
    char *turn_urls;                /* comma-separated, NULL */
    char *turn_secret;              /* NULL: coturn use-auth-secret */
    int turn_ttl_s;                 /* 86400, 60..604800 */
    /* recording */
    bool recording;                /* true */
    char *recording_dir;           /* NULL -> data_dir/recordings */
    bool recording_encrypt;        /* true: recordings encrypted at rest */
    char *recording_key;           /* NULL: 64 hex chars AES-256 key, file or environment only */
    char *recording_key_file;      /* NULL */
    int review_render_max;         /* 1, 0..8 (0: no review renditions) */
    int review_attempts;           /* 3, 1..10: tries at a rendition before it stays failed */
    int review_retry_s;            /* 60, 1..86400: wait before the first retry (then x4) */
    int review_width;              /* 640, 160..1920 */
    int review_height;             /* 360, 120..1080 */
    int review_video_kbps;         /* 500, 100..4000 */
    int retention_recordings_days; /* 1095, 1095..36500 (3 years floor) */
    int retention_records_days;    /* 5475, 5475..73000 (15 years floor) */
    int retention_audit_days;      /* 1095, 183..36500 (6 months floor) */
    int alert_loss_pct;            /* 5, 1..100 */
    int alert_freeze_ms;           /* 2000, 100..60000 */
    int interruption_min_ms;       /* 2000, 500..600000 */
    /* the tamper-evident record (record_seal.h) */
    char *seal_key_file;  /* NULL -> data_dir/seal.key, made on first start */
    char *seal_algorithm; /* "ecdsa-p256" or "sm2" */
    int seal_after_s;     /* 86400, 1..2592000: wait for a note never signed */
    /* regulator feed */
    char *feed_url;           /* NULL: events go to the NDJSON file sink in data_dir/feed/ */
    char *feed_secret;        /* NULL: HMAC-SHA256 key for the X-Telemed-Signature header */
    char *feed_ca;            /* NULL: CA file to verify the endpoint */
    char *feed_client_cert;   /* NULL: mutual TLS */
    char *feed_client_key;    /* NULL */
    int feed_timeout_ms;      /* 10000, 100..600000 */
    int feed_batch;           /* 100, 1..10000 */
    int feed_backoff_base_ms; /* 1000, 10..600000 */
    int feed_backoff_max_ms;  /* 300000, 100..86400000 */
    /* follow-ups and messaging (followup18) */
    int noshow_after_s;           /* 1800, 0..604800 */
    int appointment_due_before_s; /* 86400, 60..1209600 */
    int appointment_sweep_s;      /* 60, 1..3600 */
    char *messaging_url;          /* NULL: no messaging consumer */
    char *messaging_secret;       /* NULL: unsigned */
    char *messaging_ca;           /* NULL */
    /* delivery profiles (docs/regulator-feed.md) */
    char *feed_profiles;     /* "webhook": comma-separated, of webhook and tianjin */
    char *institution_feeds; /* members' own profiles (reg16b); NULL: none */
    /* tianjin: the Tianjin supervision platform's nightly upload */
    char *tianjin_url;            /* NULL; required with the tianjin profile */
    char *tianjin_app_key;        /* NULL; X-Ca-Key */
    char *tianjin_app_secret;     /* NULL; secret, 32 hex: the SM4 key */
    char *tianjin_iv;             /* SDK's fixed IV, 32 hex */
    char *tianjin_padding;        /* "iso7816" or "pkcs7" */
    char *tianjin_service_id;     /* "his.provinceDataUploadService" */
    char *tianjin_visit_method;   /* "uploadReferralIndicators" */
    char *tianjin_rating_method;  /* "uploadBusinessInfoAfter" */
    char *tianjin_checkin_method; /* "pushMedicalDispute" */
    char *tianjin_organ_id;       /* NULL; required: organID */
    char *tianjin_organ_name;     /* NULL: organName omitted */
    char *tianjin_unit_id;        /* NULL: unitID omitted */
    char *tianjin_business_type;  /* "4": businessType of a rating (online follow-up) */
    char *tianjin_upload_at;      /* "02:00": HH:MM[:SS] in the platform's time zone */
    int tianjin_utc_offset_min;   /* 480 (UTC+8), -720..840 */
    int tianjin_catchup_days;     /* 7, 1..366: past days staged at most after a stop */
    int tianjin_deadline_h;       /* 24, 1..168: a day's upload is due this long after it ends */
    int tianjin_batch;            /* 100, 1..1000 records per request */
    bool tianjin_send_unanswered; /* true: visits ended before a doctor answered go too */
    char *tianjin_ca;             /* NULL: CA file to verify the platform */
    /* figures (issue 18) */
    char *figures_time_zone; /* "Asia/Shanghai": IANA name; days, weeks, months of the figures */
} tm_config;

/* Fill *cfg (overwritten: clear a previous one first) from defaults, file, environment
 * and argv (argv[0] is the program). Parsing stops at the first non-option word (e.g. a
 * subcommand) or after "--"; its index is returned in *first_arg (argc if none) and the
 * words from there on are left alone. Unknown flags before it are errors.
 *
 * cfg->action is set from --help/-h, --print-config, --check-config. For HELP and PRINT
 * the config file and environment are not read (a broken file must not hide --help).
 * Cross-field constraints are checked last (media_port_min <= media_port_max when both
 * set, recording_key is 64 hex chars, key/cert pairs given together, ...).
 *
 * Returns 0, or TM_EINVAL with *err set to a new string naming the key (and the file,
 * variable or flag it came from); caller frees *err with g_free. On error cfg holds no
 * memory but cfg->action is still set; tm_config_clear is safe either way. */
int tm_config_load(tm_config *cfg, int argc, char **argv, int *first_arg, char **err);
/* After load: fill the derived paths (tls_cert, tls_key, db, recording_dir under
 * data_dir; web_root from TM_WEB_ROOT) and node_id (the host name, made a
 * valid id) that are still NULL. */
void tm_config_resolve_paths(tm_config *cfg);
/* Whether cfg->db is a PostgreSQL URL: a store that other nodes may share. */
bool tm_config_db_shared(const tm_config *cfg);
/* Usage text: every flag with its type, default, bounds, environment name and help. */
void tm_config_print_help(FILE *out);
/* A config file that loads back as the defaults: every option with its help as a
 * comment, in GKeyFile syntax; options without a default are commented out. */
void tm_config_print_sample(FILE *out);
/* Frees every string the config owns and zeroes it. */
void tm_config_clear(tm_config *cfg);

/* One member of the alliance as the institutions option declares it; the
 * strings are borrowed for the call, org_code and level may be "". */
typedef int (*tm_config_institution_fn)(const char *id, const char *name, const char *org_code,
                                        const char *level, const char *kind, void *user);
/* Calls fn for each entry of an institutions value ("id|name|org_code|level|kind"
 * separated by ';', kind hospital or clinic) after checking them all; stops
 * at fn's first nonzero result and returns it. TM_EINVAL with *err (new
 * string, g_free) when the value is malformed: then fn was not called. */
int tm_config_foreach_institution(const char *value, tm_config_institution_fn fn, void *user,
                                  char **err);

/* One member's own delivery profile as institution_feeds declares it
 * ("institution|profile|url|secret[|app_key]"); strings borrowed for the
 * call, secret and app_key may be "". */
typedef int (*tm_config_institution_feed_fn)(const char *institution, const char *profile,
                                             const char *url, const char *secret,
                                             const char *app_key, void *user);
/* Calls fn for each entry of an institution_feeds value (entries separated
 * by ';') after checking them all; as tm_config_foreach_institution. */
int tm_config_foreach_institution_feed(const char *value, tm_config_institution_feed_fn fn,
                                       void *user, char **err);

#endif
