/*
 * config_check.h - config.c's per-value checks (config_check.c), private to
 * the server's config. Each returns NULL when value is fine, else a new
 * message (g_free) that names what is wrong.
 */
#ifndef TM_CONFIG_CHECK_H
#define TM_CONFIG_CHECK_H

char *tm__config_check_log_level(const char *value);
char *tm__config_check_hex_key(const char *value);
char *tm__config_check_profiles(const char *value);
char *tm__config_check_sm4_key(const char *value);
char *tm__config_check_padding(const char *value);
char *tm__config_check_clock(const char *value);
char *tm__config_check_seal_algorithm(const char *value);
char *tm__config_check_networks(const char *value);
char *tm__config_check_consent_version(const char *value);
char *tm__config_check_http_url(const char *value);
char *tm__config_check_url_list(const char *value);
char *tm__config_check_node_id(const char *value);
char *tm__config_check_time_zone(const char *value);
char *tm__config_check_institutions(const char *value);
char *tm__config_check_institution_feeds(const char *value);

#endif
