/*
 * test_config.c - the option table through every source: defaults, a real key file
 * in a temp dir, the environment and argv; errors, actions, the printed sample.
 */
#include "telemed/common.h"
#include "telemed/config.h"
#include "tm_test.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdarg.h>

static char tmpdir[] = "/tmp/tm-config-XXXXXX";
static int file_seq;

/* Env vars a test may set; cleared before each test so tests stay independent. */
static const char *const env_used[] = {
    "TELEMED_CONFIG",    "TELEMED_PORT",     "TELEMED_DEMO",          "TELEMED_OFFER_TIMEOUT_S",
    "TELEMED_TURN_URLS", "TELEMED_DATA_DIR", "TELEMED_HOSPITAL_NAME", "TELEMED_RECORDING_KEY",
};

static void reset_env(void)
{
    for (size_t i = 0; i < TM_ARRAY_LEN(env_used); i++)
        g_unsetenv(env_used[i]);
}

/* Writes text to a new file in tmpdir; returns its path (caller frees). */
static char *write_file(const char *text)
{
    char *path = g_strdup_printf("%s/c%d.conf", tmpdir, ++file_seq);
    CHECK(g_file_set_contents(path, text, -1, NULL));
    return path;
}

/* The typed sentinel of load()'s word list (a bare NULL may be a plain 0). */
#define END ((const char *)NULL)

/* Loads from an END-terminated list of words after the program name. */
static int load(tm_config *cfg, char **err, ...)
{
    char *argv[32] = {"telemed-server"};
    int argc = 1;
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        CHECK(argc < 31);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    int first = -1;
    *err = NULL;
    int rc = tm_config_load(cfg, argc, argv, &first, err);
    if (rc == 0) {
        CHECK(*err == NULL);
        CHECK_EQ_INT(first, argc);
    } else {
        CHECK(*err != NULL);
    }
    return rc;
}

/* Expects a load error whose message contains every given fragment. */
static void expect_error(tm_config *cfg, char *err, int rc, const char *frag1, const char *frag2)
{
    CHECK_EQ_INT(rc, TM_EINVAL);
    CHECK(err != NULL);
    if (!strstr(err, frag1) || (frag2 && !strstr(err, frag2))) {
        fprintf(stderr, "error \"%s\" lacks \"%s\" / \"%s\"\n", err, frag1, frag2 ? frag2 : "");
        CHECK(0);
    }
    CHECK(cfg->data_dir == NULL); /* nothing left to free after an error */
    g_free(err);
    tm_config_clear(cfg);
}

static void test_defaults(void)
{
    reset_env();
    tm_config c;
    char *err;
    CHECK_EQ_INT(load(&c, &err, END), 0);
    CHECK_EQ_INT(c.action, TM_CONFIG_RUN);
    CHECK(c.config_path == NULL);
    CHECK_STR(c.data_dir, "./telemed-data");
    CHECK_STR(c.listen, "0.0.0.0");
    CHECK_EQ_INT(c.port, 8443);
    CHECK(c.tls_cert == NULL && c.tls_key == NULL && c.db == NULL && c.web_root == NULL);
    CHECK_STR(c.log_level, "info");
    CHECK(!c.demo);
    CHECK_STR(c.hospital_name, "Demo Internet Hospital");
    CHECK(c.jwt_secret == NULL);
    CHECK_EQ_INT(c.offer_timeout_s, 30);
    CHECK_EQ_INT(c.max_frame_bytes, 65536);
    CHECK(!c.allow_first_visits);
    CHECK(c.supervisor_notice);
    CHECK_STR(c.media_addresses, "127.0.0.1");
    CHECK_EQ_INT(c.turn_ttl_s, 86400);
    CHECK(c.recording);
    CHECK_EQ_INT(c.retention_records_days, 5475);
    CHECK_EQ_INT(c.feed_backoff_max_ms, 300000);
    tm_config_clear(&c);
    CHECK(c.data_dir == NULL && c.port == 0);
    tm_config_clear(&c); /* twice is harmless */
}

static void test_file_overrides_default(void)
{
    reset_env();
    char *path = write_file("# a comment\n[telemed]\nport = 9000\nhospital_name = North Clinic\n"
                            "demo = true\nturn_urls = turn:a:3478,turn:b:3478\n");
    tm_config c;
    char *err;
    CHECK_EQ_INT(load(&c, &err, "--config", path, END), 0);
    CHECK_STR(c.config_path, path);
    CHECK_EQ_INT(c.port, 9000);
    CHECK_STR(c.hospital_name, "North Clinic");
    CHECK(c.demo);
    CHECK_STR(c.turn_urls, "turn:a:3478,turn:b:3478");
    CHECK_EQ_INT(c.offer_timeout_s, 30); /* untouched keys keep their default */
    tm_config_clear(&c);

    /* The path may also come from TELEMED_CONFIG. */
    g_setenv("TELEMED_CONFIG", path, TRUE);
    CHECK_EQ_INT(load(&c, &err, END), 0);
    CHECK_STR(c.config_path, path);
    CHECK_EQ_INT(c.port, 9000);
    tm_config_clear(&c);
    g_free(path);
}

static void test_env_overrides_file(void)
{
    reset_env();
    char *path = write_file("[telemed]\nport = 9000\noffer_timeout_s = 45\n");
    g_setenv("TELEMED_CONFIG", path, TRUE);
    g_setenv("TELEMED_PORT", "9100", TRUE);
    tm_config c;
    char *err;
    CHECK_EQ_INT(load(&c, &err, END), 0);
    CHECK_EQ_INT(c.port, 9100);
    CHECK_EQ_INT(c.offer_timeout_s, 45);
    tm_config_clear(&c);
    g_free(path);
}

static void test_flag_overrides_env(void)
{
    reset_env();
    char *path = write_file("[telemed]\nport = 9000\n");
    g_setenv("TELEMED_PORT", "9100", TRUE);
    g_setenv("TELEMED_OFFER_TIMEOUT_S", "50", TRUE);
    tm_config c;
    char *err;
    /* An empty --config= means no file, even with TELEMED_CONFIG set. */
    char *bad = write_file("[telemed]\nnope = 1\n");
    g_setenv("TELEMED_CONFIG", bad, TRUE);
    CHECK_EQ_INT(load(&c, &err, "--config=", END), 0);
    CHECK(c.config_path == NULL);
    CHECK_EQ_INT(c.port, 9100);
    g_unsetenv("TELEMED_CONFIG");
    g_free(bad);
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "--config", path, "--port=9200", "--offer_timeout_s", "60", END),
                 0);
    CHECK_EQ_INT(c.port, 9200);
    CHECK_EQ_INT(c.offer_timeout_s, 60); /* '_' and '-' are the same in flag names */
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "--port", "9300", "--offer-timeout-s=70", END), 0);
    CHECK_EQ_INT(c.port, 9300);
    CHECK_EQ_INT(c.offer_timeout_s, 70);
    tm_config_clear(&c);
    g_free(path);
}

static void test_bool_flags(void)
{
    reset_env();
    tm_config c;
    char *err;
    CHECK_EQ_INT(load(&c, &err, "--demo", "--no-supervisor-notice", "--allow_first_visits", END),
                 0);
    CHECK(c.demo);
    CHECK(!c.supervisor_notice);
    CHECK(c.allow_first_visits);
    tm_config_clear(&c);

    /* A bare bool flag does not eat the next word. */
    int first = -1;
    char *argv[] = {"telemed-server", "--demo", "run", NULL};
    CHECK_EQ_INT(tm_config_load(&c, 3, argv, &first, &err), 0);
    CHECK(c.demo);
    CHECK_EQ_INT(first, 2);
    tm_config_clear(&c);

    g_setenv("TELEMED_DEMO", "yes", TRUE);
    CHECK_EQ_INT(load(&c, &err, END), 0);
    CHECK(c.demo);
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "--no-demo", END), 0);
    CHECK(!c.demo);
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "--demo=false", "--recording=0", END), 0);
    CHECK(!c.demo);
    CHECK(!c.recording);
    tm_config_clear(&c);

    /* --no- only exists for booleans. */
    int rc = load(&c, &err, "--no-port", END);
    expect_error(&c, err, rc, "--no-port", "unknown flag");
}

static void test_unknown_key(void)
{
    reset_env();
    tm_config c;
    char *err;
    char *path = write_file("[telemed]\nport = 9000\nofer_timeout_s = 30\n");
    int rc = load(&c, &err, "--config", path, END);
    expect_error(&c, err, rc, "ofer_timeout_s", "unknown key");
    g_free(path);

    path = write_file("[server]\nport = 9000\n");
    rc = load(&c, &err, "--config", path, END);
    expect_error(&c, err, rc, "[server]", "unknown group");
    g_free(path);

    rc = load(&c, &err, "--bogus=1", END);
    expect_error(&c, err, rc, "--bogus", "unknown flag");
    rc = load(&c, &err, "-x", END);
    expect_error(&c, err, rc, "-x", "unknown flag");

    rc = load(&c, &err, "--config", "/nonexistent/telemed.conf", END);
    expect_error(&c, err, rc, "/nonexistent/telemed.conf", NULL);

    path = write_file("this is not a key file\n");
    rc = load(&c, &err, "--config", path, END);
    expect_error(&c, err, rc, path, NULL);
    g_free(path);
}

static void test_int_out_of_bounds(void)
{
    reset_env();
    tm_config c;
    char *err;
    char *path = write_file("[telemed]\nport = 70000\n");
    int rc = load(&c, &err, "--config", path, END);
    expect_error(&c, err, rc, "port: 70000 is out of bounds 0..65535", path);
    g_free(path);

    g_setenv("TELEMED_OFFER_TIMEOUT_S", "4", TRUE);
    rc = load(&c, &err, END);
    expect_error(&c, err, rc, "offer_timeout_s: 4 is out of bounds 5..600",
                 "TELEMED_OFFER_TIMEOUT_S");
    reset_env();

    rc = load(&c, &err, "--retention-records-days=365", END);
    expect_error(&c, err, rc, "retention_records_days", "5475..73000");
    rc = load(&c, &err, "--port=99999999999999999999", END);
    expect_error(&c, err, rc, "port", "not an integer");
    rc = load(&c, &err, "--port=-1", END);
    expect_error(&c, err, rc, "port", "0..65535");

    /* The bounds themselves are allowed. */
    CHECK_EQ_INT(load(&c, &err, "--port=0", "--offer-timeout-s=600", END), 0);
    CHECK_EQ_INT(c.port, 0);
    CHECK_EQ_INT(c.offer_timeout_s, 600);
    tm_config_clear(&c);
}

static void test_wrong_type(void)
{
    reset_env();
    tm_config c;
    char *err;
    char *path = write_file("[telemed]\nport = eighty\n");
    int rc = load(&c, &err, "--config", path, END);
    expect_error(&c, err, rc, "port", "not an integer");
    g_free(path);

    path = write_file("[telemed]\ndemo = maybe\n");
    rc = load(&c, &err, "--config", path, END);
    expect_error(&c, err, rc, "demo", "not a boolean");
    g_free(path);

    rc = load(&c, &err, "--grace-s=12s", END);
    expect_error(&c, err, rc, "grace_s", "not an integer");
    rc = load(&c, &err, "--port= 80", END);
    expect_error(&c, err, rc, "port", "not an integer");
    g_setenv("TELEMED_DEMO", "2", TRUE);
    rc = load(&c, &err, END);
    expect_error(&c, err, rc, "demo", "TELEMED_DEMO");
    reset_env();
    rc = load(&c, &err, "--log-level=loud", END);
    expect_error(&c, err, rc, "log_level", "loud");
    rc = load(&c, &err, "--media-candidate-networks=10.0.0.0/8,hospital", END);
    expect_error(&c, err, rc, "media_candidate_networks", "'hospital' is not a network");
    rc = load(&c, &err, "--port", END);
    expect_error(&c, err, rc, "--port", "needs a value");
    rc = load(&c, &err, "--help=yes", END);
    expect_error(&c, err, rc, "--help", "takes no value");
}

static void test_empty_string(void)
{
    reset_env();
    tm_config c;
    char *err;
    char *path = write_file("[telemed]\nturn_urls = turn:x\n");
    g_setenv("TELEMED_TURN_URLS", "", TRUE); /* empty unsets an optional string */
    CHECK_EQ_INT(load(&c, &err, "--config", path, END), 0);
    CHECK(c.turn_urls == NULL);
    tm_config_clear(&c);
    g_free(path);

    g_setenv("TELEMED_DATA_DIR", "", TRUE);
    int rc = load(&c, &err, END);
    expect_error(&c, err, rc, "data_dir", "must not be empty");
}

static void test_subcommand_index(void)
{
    reset_env();
    char *argv[] = {"telemed-server", "--port", "1", "token", "--sub", "x", NULL};
    char *copy[7];
    memcpy(copy, argv, sizeof(argv));
    tm_config c;
    char *err = NULL;
    int first = -1;
    CHECK_EQ_INT(tm_config_load(&c, 6, argv, &first, &err), 0);
    CHECK(err == NULL);
    CHECK_EQ_INT(first, 3);
    CHECK_STR(argv[first], "token");
    CHECK_EQ_INT(c.port, 1);
    CHECK(memcmp(copy, argv, sizeof(argv)) == 0);
    CHECK_STR(argv[4], "--sub");
    tm_config_clear(&c);

    /* "--" ends the options even before a word that looks like a flag. */
    char *argv2[] = {"telemed-server", "--demo", "--", "--port", "2", NULL};
    CHECK_EQ_INT(tm_config_load(&c, 5, argv2, &first, &err), 0);
    CHECK_EQ_INT(first, 3);
    CHECK_EQ_INT(c.port, 8443);
    tm_config_clear(&c);

    /* A lone "-" is a word (stdin by convention), not a flag. */
    char *argv3[] = {"telemed-server", "import", "-", NULL};
    CHECK_EQ_INT(tm_config_load(&c, 3, argv3, &first, &err), 0);
    CHECK_EQ_INT(first, 1);
    tm_config_clear(&c);
}

static void test_actions(void)
{
    reset_env();
    tm_config c;
    char *err;
    char *bad = write_file("[telemed]\nnope = 1\n");

    /* --help and --print-config work even when the config file is broken. */
    g_setenv("TELEMED_CONFIG", bad, TRUE);
    CHECK_EQ_INT(load(&c, &err, "--help", END), 0);
    CHECK_EQ_INT(c.action, TM_CONFIG_HELP);
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "-h", END), 0);
    CHECK_EQ_INT(c.action, TM_CONFIG_HELP);
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "--print-config", END), 0);
    CHECK_EQ_INT(c.action, TM_CONFIG_PRINT);
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "--check-config", "--help", END), 0);
    CHECK_EQ_INT(c.action, TM_CONFIG_HELP);
    tm_config_clear(&c);

    /* --check-config reports the error and keeps the action for the exit code. */
    int rc = load(&c, &err, "--check-config", END);
    CHECK_EQ_INT(c.action, TM_CONFIG_CHECK);
    expect_error(&c, err, rc, "nope", bad);
    reset_env();
    char *good = write_file("[telemed]\nport = 1234\n");
    CHECK_EQ_INT(load(&c, &err, "--check-config", "--config", good, END), 0);
    CHECK_EQ_INT(c.action, TM_CONFIG_CHECK);
    CHECK_EQ_INT(c.port, 1234);
    tm_config_clear(&c);
    g_free(good);
    g_free(bad);
}

static void test_feed_profiles(void)
{
    reset_env();
    tm_config c;
    char *err;
    CHECK_EQ_INT(load(&c, &err, END), 0);
    CHECK_STR(c.feed_profiles, "webhook");
    CHECK_STR(c.tianjin_upload_at, "02:00");
    CHECK_EQ_INT(c.tianjin_utc_offset_min, 480);
    tm_config_clear(&c);
    int rc = load(&c, &err, "--feed-profiles", "webhook,shanghai", END);
    expect_error(&c, err, rc, "feed_profiles", "'shanghai' is not one of webhook, tianjin");
    rc =
        load(&c, &err, "--feed-profiles", "tianjin", "--tianjin-url", "https://p/openapi/api", END);
    expect_error(&c, err, rc, "tianjin_app_key", "required by feed_profiles=tianjin");
    const char *secret = "0123456789abcdef0123456789abcdeg";
    rc = load(&c, &err, "--tianjin-app-secret", secret, END);
    CHECK(!strstr(err, secret));
    expect_error(&c, err, rc, "tianjin_app_secret", "32 hex");
    rc = load(&c, &err, "--tianjin-upload-at", "25:00", END);
    expect_error(&c, err, rc, "tianjin_upload_at", "HH:MM");
    rc = load(&c, &err, "--tianjin-padding", "zero", END);
    expect_error(&c, err, rc, "tianjin_padding", "iso7816, pkcs7");
    rc = load(&c, &err, "--consent-version", "v 2", END);
    expect_error(&c, err, rc, "consent_version", "1-31 letters");
    rc = load(&c, &err, "--consent-version", "0123456789012345678901234567890123", END);
    expect_error(&c, err, rc, "consent_version", "1-31 letters");
    rc = load(&c, &err, "--doctor-verify-url", "ftp://idp/verify", END);
    expect_error(&c, err, rc, "doctor_verify_url", "https://");
    CHECK_EQ_INT(load(&c, &err, "--consent-version", "h-7.2_b", "--doctor-verify-url",
                      "https://idp.example/verify", "--doctor-verify-window-s", "0", END),
                 0);
    CHECK_STR(c.consent_version, "h-7.2_b");
    CHECK_EQ_INT(c.doctor_verify_window_s, 0);
    CHECK(c.consent_required);
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "--feed-profiles", "webhook, tianjin", "--tianjin-url",
                      "https://p/a", "--tianjin-app-key", "k", "--tianjin-app-secret",
                      "0123456789abcdef0123456789abcdef", "--tianjin-organ-id", "o",
                      "--tianjin-upload-at", "01:30:15", END),
                 0);
    tm_config_clear(&c);
}

static void test_cross_field(void)
{
    reset_env();
    tm_config c;
    char *err;
    int rc = load(&c, &err, "--media-port-min=50000", "--media-port-max=40000", END);
    expect_error(&c, err, rc, "media_port_min", "media_port_max");
    CHECK_EQ_INT(load(&c, &err, "--media-port-min=50000", END), 0); /* max 0: any */
    tm_config_clear(&c);
    CHECK_EQ_INT(load(&c, &err, "--media-port-min=40000", "--media-port-max=40000", END), 0);
    tm_config_clear(&c);

    /* The key is read from the environment or the file, never from argv,
     * which every user of the host can read in ps. */
    const char *key = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    rc = load(&c, &err, "--recording-key", key, END);
    CHECK(!strstr(err, key));
    expect_error(&c, err, rc, "recording_key", "not accepted on the command line");
    char *flag = g_strconcat("--recording-key=", key, NULL);
    rc = load(&c, &err, flag, END);
    CHECK(!strstr(err, key));
    expect_error(&c, err, rc, "recording_key", "recording_key_file or the environment");
    g_free(flag);
    g_setenv("TELEMED_RECORDING_KEY", key, TRUE);
    CHECK_EQ_INT(load(&c, &err, END), 0);
    CHECK_STR(c.recording_key, key);
    CHECK(c.recording_encrypt); /* encrypted at rest unless turned off */
    tm_config_clear(&c);
    char shortkey[64];
    memcpy(shortkey, key, 63);
    shortkey[63] = '\0';
    g_setenv("TELEMED_RECORDING_KEY", shortkey, TRUE);
    rc = load(&c, &err, END);
    CHECK(!strstr(err, shortkey)); /* secrets are not echoed */
    expect_error(&c, err, rc, "recording_key", "64 hex");
    flag = g_strconcat("--recording-ky=", key, NULL);
    g_unsetenv("TELEMED_RECORDING_KEY");
    rc = load(&c, &err, flag, END);
    CHECK(!strstr(err, key));
    expect_error(&c, err, rc, "--recording-ky", "unknown flag");
    g_free(flag);
    char *nothex = g_strdup(key);
    nothex[10] = 'g';
    g_setenv("TELEMED_RECORDING_KEY", nothex, TRUE);
    rc = load(&c, &err, END);
    expect_error(&c, err, rc, "recording_key", "hex");
    g_free(nothex);
    g_setenv("TELEMED_RECORDING_KEY", key, TRUE);
    rc = load(&c, &err, "--recording-key-file=/k", END);
    expect_error(&c, err, rc, "recording_key", "not both");
    g_unsetenv("TELEMED_RECORDING_KEY");

    /* The HS256 secret the same: environment, config file or its own file. */
    const char *secret = "jwt-secret-seen-by-nobody";
    rc = load(&c, &err, "--jwt-secret", secret, END);
    CHECK(!strstr(err, secret));
    expect_error(&c, err, rc, "jwt_secret", "jwt_secret_file or the environment");
    g_setenv("TELEMED_JWT_SECRET", secret, TRUE);
    CHECK_EQ_INT(load(&c, &err, END), 0);
    CHECK_STR(c.jwt_secret, secret);
    tm_config_clear(&c);
    rc = load(&c, &err, "--jwt-secret-file=/s", END);
    expect_error(&c, err, rc, "jwt_secret", "not both");
    g_unsetenv("TELEMED_JWT_SECRET");
    CHECK_EQ_INT(load(&c, &err, "--jwt-secret-file=/s", END), 0);
    CHECK_STR(c.jwt_secret_file, "/s");
    tm_config_clear(&c);

    rc = load(&c, &err, "--tls-cert=/a.crt", END);
    expect_error(&c, err, rc, "tls_cert", "tls_key");
    rc = load(&c, &err, "--feed-client-key=/a.key", END);
    expect_error(&c, err, rc, "feed_client_cert", "feed_client_key");
    rc = load(&c, &err, "--feed-backoff-base-ms=5000", "--feed-backoff-max-ms=1000", END);
    expect_error(&c, err, rc, "feed_backoff_base_ms", "feed_backoff_max_ms");
}

static void test_resolve_paths(void)
{
    reset_env();
    tm_config c;
    char *err;
    CHECK_EQ_INT(load(&c, &err, "--data-dir=/srv/tm", "--db=/var/lib/t.db", END), 0);
    tm_config_resolve_paths(&c);
    CHECK_STR(c.tls_cert, "/srv/tm/tls/server.crt");
    CHECK_STR(c.tls_key, "/srv/tm/tls/server.key");
    CHECK_STR(c.db, "/var/lib/t.db");
    CHECK_STR(c.recording_dir, "/srv/tm/recordings");
    CHECK(c.web_root && g_str_has_suffix(c.web_root, "web-client"));
    tm_config_clear(&c);
}

static char *capture(void (*print)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    print(f);
    CHECK(fclose(f) == 0);
    return buf;
}

static void test_sample_round_trip(void)
{
    reset_env();
    char *text = capture(tm_config_print_sample);
    CHECK(strstr(text, "[telemed]") != NULL);
    CHECK(strstr(text, "\noffer_timeout_s = 30\n") != NULL);
    CHECK(strstr(text, "\n#jwt_secret =\n") != NULL); /* no default: commented out */
    CHECK(strstr(text, "# Seconds a doctor has to accept an offered patient.\n") != NULL);
    char *path = write_file(text);

    tm_config d, s;
    char *err;
    CHECK_EQ_INT(load(&d, &err, END), 0);
    CHECK_EQ_INT(load(&s, &err, "--check-config", "--config", path, END), 0);
    CHECK_STR(s.config_path, path);
    CHECK_STR(s.data_dir, d.data_dir);
    CHECK_STR(s.listen, d.listen);
    CHECK_STR(s.log_level, d.log_level);
    CHECK_STR(s.hospital_id, d.hospital_id);
    CHECK_STR(s.hospital_name, d.hospital_name);
    CHECK_STR(s.media_addresses, d.media_addresses);
    CHECK(s.tls_cert == NULL && s.jwt_secret == NULL && s.feed_url == NULL);
    CHECK(s.recording_key == NULL && s.turn_urls == NULL && s.media_public_ip == NULL);
    CHECK_EQ_INT(s.port, d.port);
    CHECK_EQ_INT(s.jwt_leeway_s, d.jwt_leeway_s);
    CHECK_EQ_INT(s.max_frame_bytes, d.max_frame_bytes);
    CHECK_EQ_INT(s.avg_visit_s, d.avg_visit_s);
    CHECK_EQ_INT(s.max_connections, d.max_connections);
    CHECK_EQ_INT(s.media_workers, d.media_workers);
    CHECK_EQ_INT(s.turn_ttl_s, d.turn_ttl_s);
    CHECK_EQ_INT(s.retention_audit_days, d.retention_audit_days);
    CHECK_EQ_INT(s.alert_freeze_ms, d.alert_freeze_ms);
    CHECK_EQ_INT(s.feed_timeout_ms, d.feed_timeout_ms);
    CHECK_EQ_INT(s.feed_backoff_base_ms, d.feed_backoff_base_ms);
    CHECK(s.demo == d.demo && s.recording == d.recording);
    CHECK(s.supervisor_notice == d.supervisor_notice);
    CHECK(s.allow_first_visits == d.allow_first_visits);
    tm_config_clear(&s);
    tm_config_clear(&d);

    /* Uncommenting every unset key with a value must also load: the sample names
     * only real keys. Values chosen to pass the cross-field rules. */
    GString *edited = g_string_new(NULL);
    char **lines = g_strsplit(text, "\n", -1);
    int uncommented = 0;
    for (size_t i = 0; lines[i]; i++) {
        const char *l = lines[i];
        if (l[0] == '#' && l[1] != ' ' && g_str_has_suffix(l, " =")) {
            char *key = g_strndup(l + 1, strlen(l) - 3);
            const char *v =
                strcmp(key, "recording_key") == 0
                    ? "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
                : strcmp(key, "tianjin_app_secret") == 0       ? "00112233445566778899aabbccddeeff"
                : strcmp(key, "media_candidate_networks") == 0 ? "10.20.0.0/16, fd00::/8"
                : strcmp(key, "doctor_verify_url") == 0        ? "https://idp.example/verify"
                : strcmp(key, "institutions") == 0             ? "west|County West|ORG1|2A|hospital"
                : strcmp(key, "messaging_url") == 0            ? "https://sms.example/events"
                : strcmp(key, "node_id") == 0                  ? "node-x"
                : strcmp(key, "public_url") == 0               ? "https://node-x.example:8443"
                : strcmp(key, "cluster_urls") == 0      ? "https://a.example:8443,https://b.example"
                : strcmp(key, "institution_feeds") == 0 ? "west|webhook|https://w.example/feed|k"
                                                        : "/x";
            if (strcmp(key, "recording_key_file") != 0 && strcmp(key, "jwt_secret_file") != 0) {
                g_string_append_printf(edited, "%s = %s\n", key, v);
                uncommented++;
            }
            g_free(key);
        } else {
            g_string_append_printf(edited, "%s\n", l);
        }
    }
    CHECK(uncommented >= 15);
    char *path2 = write_file(edited->str);
    CHECK_EQ_INT(load(&s, &err, "--config", path2, END), 0);
    CHECK_STR(s.jwt_secret, "/x");
    CHECK_STR(s.feed_client_key, "/x");
    tm_config_clear(&s);
    g_strfreev(lines);
    g_string_free(edited, TRUE);
    g_free(path2);
    g_free(path);
    free(text);
}

static void test_help_text(void)
{
    char *text = capture(tm_config_print_help);
    CHECK(strstr(text, "--offer-timeout-s=INT") != NULL);
    CHECK(strstr(text, "TELEMED_OFFER_TIMEOUT_S") != NULL);
    CHECK(strstr(text, "--[no-]supervisor-notice") != NULL);
    CHECK(strstr(text, "--check-config") != NULL);
    CHECK(strstr(text, "5..600") != NULL);
    free(text);
}

/* docs/config.md carries the printed help and sample verbatim; this keeps it from
 * drifting from the table. Regenerate with telemed-server --help / --print-config. */
static void test_docs_match_table(void)
{
#ifdef TM_SRC_DIR
    char *doc = NULL;
    CHECK(g_file_get_contents(TM_SRC_DIR "/docs/config.md", &doc, NULL, NULL));
    char *help = capture(tm_config_print_help);
    char *sample = capture(tm_config_print_sample);
    if (!strstr(doc, help) || !strstr(doc, sample)) {
        fprintf(stderr, "docs/config.md is out of date with server/config.c\n");
        CHECK(0);
    }
    free(help);
    free(sample);
    g_free(doc);
#endif
}

/* ---- the alliance's institutions (issue 18) ---- */

static int count_member(const char *id, const char *name, const char *org_code, const char *level,
                        const char *kind, void *user)
{
    GString *seen = user;
    g_string_append_printf(seen, "[%s|%s|%s|%s|%s]", id, name, org_code, level, kind);
    return 0;
}

static void test_institutions(void)
{
    GString *seen = g_string_new(NULL);
    char *err = NULL;
    CHECK_EQ_INT(tm_config_foreach_institution(
                     " west | County West | ORG1 | 2A | hospital ;east|East Clinic||| clinic;",
                     count_member, seen, &err),
                 0);
    CHECK_STR(seen->str, "[west|County West|ORG1|2A|hospital][east|East Clinic|||clinic]");
    CHECK_EQ_INT(tm_config_foreach_institution(NULL, count_member, seen, &err), 0);
    static const char *const bad[] = {
        "west|County West|ORG1|2A",           /* four fields */
        "we st|County West|ORG1|2A|hospital", /* a bad id */
        "west||ORG1|2A|hospital",             /* no name */
        "west|County West|ORG1|2A|core",      /* the core is the hospital_* options */
        "west|A|||clinic; west|B|||hospital", /* twice */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_string_truncate(seen, 0);
        err = NULL;
        CHECK_EQ_INT(tm_config_foreach_institution(bad[i], count_member, seen, &err), TM_EINVAL);
        CHECK(err != NULL && strstr(err, "institutions: ") == err);
        CHECK_EQ_INT((int)seen->len, 0); /* nothing declared from a bad value */
        g_free(err);
    }
    /* The file loader refuses it too, naming the option. */
    tm_config c;
    char *path = write_file("[telemed]\ninstitutions = west|County West|ORG1|2A|pharmacy\n");
    CHECK(load(&c, &err, "--config", path, END) != 0);
    CHECK(err && strstr(err, "institutions") && strstr(err, "pharmacy"));
    g_free(err);
    tm_config_clear(&c);
    g_free(path);
    g_string_free(seen, TRUE);
}

int main(void)
{
    CHECK(g_mkdtemp(tmpdir) != NULL);
    /* The defaults test must not see a TELEMED_* the caller's shell exported. */
    char **env = g_listenv();
    for (size_t i = 0; env[i]; i++) {
        if (g_str_has_prefix(env[i], "TELEMED_"))
            g_unsetenv(env[i]);
    }
    g_strfreev(env);
    RUN(test_defaults);
    RUN(test_institutions);
    RUN(test_file_overrides_default);
    RUN(test_env_overrides_file);
    RUN(test_flag_overrides_env);
    RUN(test_bool_flags);
    RUN(test_unknown_key);
    RUN(test_int_out_of_bounds);
    RUN(test_wrong_type);
    RUN(test_empty_string);
    RUN(test_subcommand_index);
    RUN(test_actions);
    RUN(test_cross_field);
    RUN(test_feed_profiles);
    RUN(test_resolve_paths);
    RUN(test_sample_round_trip);
    RUN(test_help_text);
    RUN(test_docs_match_table);
    for (int i = 1; i <= file_seq; i++) {
        char *p = g_strdup_printf("%s/c%d.conf", tmpdir, i);
        g_unlink(p);
        g_free(p);
    }
    g_rmdir(tmpdir);
    TEST_DONE();
}
