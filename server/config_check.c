/*
 * config_check.c - the values config.c's table checks one by one: log
 * levels, keys, upload profiles, networks, URLs, time zones and the
 * alliance's institutions. Each checker returns NULL when the value is fine,
 * else a new message for the person who wrote it (config_check.h).
 *
 * Runs once on the control loop at start, from config.c's loaders.
 */
#include "config_check.h"
#include "telemed/common.h"
#include "telemed/config.h"
#include "telemed/figures.h"
#include "telemed/log.h"
#include "telemed/visit_seal.h"

#include <gio/gio.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

/* ---- the alliance's institutions ------------------------------------- */

#define INSTITUTION_FIELDS 5

static bool institution_id_ok(const char *id)
{
    if (!*id || strlen(id) > 63)
        return false;
    for (const char *c = id; *c; c++)
        if (!g_ascii_isalnum(*c) && *c != '-' && *c != '_' && *c != '.')
            return false;
    return true;
}

/* What is wrong with one entry's stripped fields (a new message), or NULL. */
typedef char *(*entry_check_fn)(gchar **f);

/* Splits value into ';'-separated entries of '|'-separated stripped fields
 * and checks each with check, and that no two share their first field
 * (twice: the message's format for that, given the field); a new message
 * for the first problem, else NULL with *out (free with g_ptr_array_unref)
 * holding each entry's gchar ** fields. */
static char *split_entries(const char *value, entry_check_fn check, const char *twice,
                           GPtrArray **out)
{
    GPtrArray *entries = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    gchar **items = g_strsplit(value, ";", -1);
    char *why = NULL;
    for (gchar **it = items; *it && !why; it++) {
        g_strstrip(*it);
        if (!**it)
            continue;
        gchar **f = g_strsplit(*it, "|", -1);
        for (gchar **x = f; *x; x++)
            g_strstrip(*x);
        g_ptr_array_add(entries, f);
        why = check(f);
        for (guint i = 0; !why && i + 1 < entries->len; i++)
            if (strcmp(((gchar **)g_ptr_array_index(entries, i))[0], f[0]) == 0)
                why = g_strdup_printf(twice, f[0]);
    }
    g_strfreev(items);
    if (why)
        g_ptr_array_unref(entries);
    else
        *out = entries;
    return why;
}

/* split_entries' message alone. */
static char *check_entries(const char *value, entry_check_fn check, const char *twice)
{
    GPtrArray *entries = NULL;
    char *why = split_entries(value, check, twice, &entries);
    if (entries)
        g_ptr_array_unref(entries);
    return why;
}

/* id|name|org_code|level|kind */
static char *check_institution(gchar **f)
{
    if (g_strv_length(f) != INSTITUTION_FIELDS) {
        char *joined = g_strjoinv("|", f);
        char *why = g_strdup_printf("'%s' is not id|name|org_code|level|kind", joined);
        g_free(joined);
        return why;
    }
    if (!institution_id_ok(f[0]))
        return g_strdup_printf("'%s': the id must be 1-63 of [A-Za-z0-9._-]", f[0]);
    if (!*f[1] || strlen(f[1]) > 255 || strlen(f[2]) > 63 || strlen(f[3]) > 31)
        return g_strdup_printf("'%s': name (1-255 bytes), org_code (<= 63), level (<= 31)", f[0]);
    if (strcmp(f[4], "hospital") != 0 && strcmp(f[4], "clinic") != 0)
        return g_strdup_printf("'%s': kind '%s' is not hospital or clinic", f[0], f[4]);
    return NULL;
}

#define INSTITUTION_TWICE "'%s' is declared twice"

char *tm__config_check_institutions(const char *value)
{
    return check_entries(value, check_institution, INSTITUTION_TWICE);
}

int tm_config_foreach_institution(const char *value, tm_config_institution_fn fn, void *user,
                                  char **err)
{
    GPtrArray *entries = NULL;
    char *why = split_entries(value ? value : "", check_institution, INSTITUTION_TWICE, &entries);
    if (why) {
        *err = g_strdup_printf("institutions: %s", why);
        g_free(why);
        return TM_EINVAL;
    }
    int rc = 0;
    for (guint i = 0; i < entries->len && rc == 0; i++) {
        gchar **f = g_ptr_array_index(entries, i);
        rc = fn(f[0], f[1], f[2], f[3], f[4], user);
    }
    g_ptr_array_unref(entries);
    return rc;
}

/* ---- the members' own delivery profiles ------------------------------- */

/* institution|profile|url|secret[|app_key]. Entries are named by
 * institution only: a URL or secret may not be shown. */
static char *check_institution_feed(gchar **f)
{
    guint n = g_strv_length(f);
    bool tianjin = n >= 2 && strcmp(f[1], "tianjin") == 0;
    char *bad = NULL, *why = NULL;
    if (n != 4 && n != 5)
        why = g_strdup("an entry is not institution|profile|url|secret[|app_key]");
    else if (!institution_id_ok(f[0]))
        why = g_strdup_printf("'%s': the id must be 1-63 of [A-Za-z0-9._-]", f[0]);
    else if (strcmp(f[1], "webhook") != 0 && !tianjin)
        why = g_strdup_printf("'%s': profile '%s' is not webhook or tianjin", f[0], f[1]);
    else if ((bad = tm__config_check_http_url(f[2])) != NULL)
        why = g_strdup_printf("'%s': the url is not https:// (or http://)", f[0]);
    else if (tianjin && (n != 5 || !*f[4] || (bad = tm__config_check_sm4_key(f[3])) != NULL))
        why = g_strdup_printf("'%s': tianjin needs its app secret (32 hex) and app key", f[0]);
    else if (!tianjin && n == 5 && *f[4])
        why = g_strdup_printf("'%s': a webhook takes no app key", f[0]);
    g_free(bad);
    return why;
}

#define FEED_TWICE "'%s' has two profiles"

char *tm__config_check_institution_feeds(const char *value)
{
    return check_entries(value, check_institution_feed, FEED_TWICE);
}

int tm_config_foreach_institution_feed(const char *value, tm_config_institution_feed_fn fn,
                                       void *user, char **err)
{
    GPtrArray *entries = NULL;
    char *why = split_entries(value ? value : "", check_institution_feed, FEED_TWICE, &entries);
    if (why) {
        *err = g_strdup_printf("institution_feeds: %s", why);
        g_free(why);
        return TM_EINVAL;
    }
    int rc = 0;
    for (guint i = 0; i < entries->len && rc == 0; i++) {
        gchar **f = g_ptr_array_index(entries, i);
        rc = fn(f[0], f[1], f[2], f[3], f[4] ? f[4] : "", user);
    }
    g_ptr_array_unref(entries);
    return rc;
}

char *tm__config_check_log_level(const char *value)
{
    tm_log_level l;
    if (tm_log_parse_level(value, &l) == 0)
        return NULL;
    return g_strdup_printf("'%s' is not one of debug, info, warn, error", value);
}

char *tm__config_check_hex_key(const char *value)
{
    size_t n = strlen(value);
    for (size_t i = 0; i < n; i++) {
        if (!g_ascii_isxdigit(value[i]))
            return g_strdup("must be 64 hex characters (not hex)");
    }
    if (n != 64)
        return g_strdup_printf("must be 64 hex characters (got %zu)", n);
    return NULL;
}

char *tm__config_check_profiles(const char *value)
{
    char **names = g_strsplit(value, ",", -1);
    char *why = NULL;
    for (char **n = names; *n && !why; n++) {
        const char *name = g_strstrip(*n);
        if (strcmp(name, "webhook") != 0 && strcmp(name, "tianjin") != 0)
            why = g_strdup_printf("'%s' is not one of webhook, tianjin", name);
    }
    g_strfreev(names);
    return why;
}

char *tm__config_check_sm4_key(const char *value)
{
    size_t n = strlen(value);
    for (size_t i = 0; i < n; i++) {
        if (!g_ascii_isxdigit(value[i]))
            return g_strdup("must be 32 hex characters (not hex)");
    }
    return n == 32 ? NULL : g_strdup_printf("must be 32 hex characters (got %zu)", n);
}

char *tm__config_check_padding(const char *value)
{
    if (strcmp(value, "iso7816") == 0 || strcmp(value, "pkcs7") == 0)
        return NULL;
    return g_strdup_printf("'%s' is not one of iso7816, pkcs7", value);
}

char *tm__config_check_clock(const char *value)
{
    int h = -1, m = -1, sec = 0, used = 0;
    int n = sscanf(value, "%2d:%2d%n:%2d%n", &h, &m, &used, &sec, &used);
    if (n < 2 || value[used] || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 59)
        return g_strdup_printf("'%s' is not a time of day HH:MM or HH:MM:SS", value);
    return NULL;
}

/* Kept with every consent given: short, printable, no spaces. */
char *tm__config_check_consent_version(const char *value)
{
    size_t n = strlen(value);
    bool ok = n > 0 && n < 32;
    for (const char *c = value; ok && *c; c++)
        ok = g_ascii_isalnum(*c) || strchr(".-_", *c);
    return ok ? NULL : g_strdup_printf("'%s' is not 1-31 letters, digits, '.', '-' or '_'", value);
}

char *tm__config_check_http_url(const char *value)
{
    if (g_str_has_prefix(value, "https://") || g_str_has_prefix(value, "http://"))
        return NULL;
    return g_strdup_printf("'%s' is not an https:// (or http://) URL", value);
}

char *tm__config_check_url_list(const char *value)
{
    gchar **urls = g_strsplit(value, ",", -1);
    char *why = NULL;
    for (gchar **u = urls; *u && !why; u++)
        why = tm__config_check_http_url(g_strstrip(*u));
    g_strfreev(urls);
    return why;
}

char *tm__config_check_node_id(const char *value)
{
    if (institution_id_ok(value))
        return NULL;
    return g_strdup_printf("'%s' is not 1-63 letters, digits, '.', '-' or '_'", value);
}

char *tm__config_check_seal_algorithm(const char *value)
{
    tm_seal_alg alg;
    if (tm_seal_alg_parse(value, &alg) == 0)
        return NULL;
    return g_strdup_printf("'%s' is not one of ecdsa-p256, sm2", value);
}

char *tm__config_check_networks(const char *value)
{
    char **nets = g_strsplit(value, ",", -1);
    char *bad = NULL;
    for (char **n = nets; *n && !bad; n++) {
        g_strstrip(*n);
        GInetAddressMask *mask = **n ? g_inet_address_mask_new_from_string(*n, NULL) : NULL;
        if (mask)
            g_object_unref(mask);
        else if (**n)
            bad = g_strdup_printf("'%s' is not a network (address/prefix, e.g. 10.20.0.0/16)", *n);
    }
    g_strfreev(nets);
    return bad;
}

/* Issue 18: the figures' time zone must be one the system's tzdata knows. */
char *tm__config_check_time_zone(const char *value)
{
    if (tm_figures_time_zone_valid(value))
        return NULL;
    return g_strdup_printf("'%s' is not a time zone this system knows (IANA name, e.g. "
                           "Asia/Shanghai)",
                           value);
}
