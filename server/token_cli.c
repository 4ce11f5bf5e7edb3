/*
 * token_cli.c - `telemed-server token`: mint a bearer token for a user, for
 * demos, scripts and tests.
 *
 * Owns nothing. Runs on the main thread before any loop starts (getopt keeps
 * global state). Prints only the token on stdout so that a shell can capture it.
 */
#include "telemed/jwt.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void)
{
    fprintf(stderr, "usage: telemed-server token --sub ID --role patient|doctor|supervisor|admin"
                    " [--name NAME] [--dept ID] [--hosp ID] [--inst ID] [--ttl SECONDS]"
                    " [--nbf-in SECONDS]"
                    " [--auth-age SECONDS | --no-auth-time] [--amr LIST] [--secret S | --key "
                    "PEM_PATH [--kid K]]\n");
}

/* A whole decimal number within +-10 years in seconds. */
static int parse_seconds(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v > 315360000LL || v < -315360000LL)
        return TM_EINVAL;
    *out = (int64_t)v;
    return 0;
}

static int copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return TM_EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

int tm_token_main(const char *default_secret, int argc, char **argv)
{
    enum {
        O_SUB = 1,
        O_ROLE,
        O_NAME,
        O_DEPT,
        O_HOSP,
        O_TTL,
        O_NBF,
        O_SECRET,
        O_KEY,
        O_KID,
        O_AUTH_AGE,
        O_NO_AUTH_TIME,
        O_AMR,
        O_INST
    };
    static const struct option opts[] = {
        {"sub", required_argument, NULL, O_SUB},
        {"role", required_argument, NULL, O_ROLE},
        {"name", required_argument, NULL, O_NAME},
        {"dept", required_argument, NULL, O_DEPT},
        {"hosp", required_argument, NULL, O_HOSP},
        {"ttl", required_argument, NULL, O_TTL},
        {"nbf-in", required_argument, NULL, O_NBF},
        {"secret", required_argument, NULL, O_SECRET},
        {"key", required_argument, NULL, O_KEY},
        {"kid", required_argument, NULL, O_KID},
        {"auth-age", required_argument, NULL, O_AUTH_AGE},
        {"no-auth-time", no_argument, NULL, O_NO_AUTH_TIME},
        {"amr", required_argument, NULL, O_AMR},
        {"inst", required_argument, NULL, O_INST},
        {NULL, 0, NULL, 0},
    };
    tm_identity id;
    const char *secret = default_secret, *key = NULL, *kid = NULL;
    int64_t ttl = 3600, nbf_in = 0, auth_age = 0;
    int has_nbf = 0, has_auth_time = 1, bad = 0, c;

    memset(&id, 0, sizeof id);
    /* glibc only fully re-initialises getopt (permutation state too) on 0. */
#ifdef __GLIBC__
    optind = 0;
#else
    optind = 1;
#endif
    while (!bad && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_SUB:
            bad = copy_field(id.sub, sizeof id.sub, optarg) < 0;
            break;
        case O_ROLE:
            bad = tm_role_parse(optarg, &id.role) < 0;
            break;
        case O_NAME:
            bad = copy_field(id.name, sizeof id.name, optarg) < 0;
            break;
        case O_DEPT:
            bad = copy_field(id.dept, sizeof id.dept, optarg) < 0;
            break;
        case O_HOSP:
            bad = copy_field(id.hospital, sizeof id.hospital, optarg) < 0;
            break;
        case O_INST:
            bad = copy_field(id.institution, sizeof id.institution, optarg) < 0;
            break;
        case O_TTL:
            bad = parse_seconds(optarg, &ttl) < 0;
            break;
        case O_NBF:
            bad = parse_seconds(optarg, &nbf_in) < 0;
            has_nbf = 1;
            break;
        case O_SECRET:
            secret = optarg;
            break;
        case O_KEY:
            key = optarg;
            break;
        case O_KID:
            kid = optarg;
            break;
        case O_AUTH_AGE:
            bad = parse_seconds(optarg, &auth_age) < 0;
            break;
        case O_NO_AUTH_TIME:
            has_auth_time = 0;
            break;
        case O_AMR:
            bad = copy_field(id.amr, sizeof id.amr, optarg) < 0;
            break;
        default:
            bad = 1;
            break;
        }
    }
    if (!bad && !key && (!secret || !secret[0])) {
        fprintf(stderr, "telemed-server token: no HS256 secret here (jwt_public_keys is set, so "
                        "tokens come from the identity provider); give --key or --secret\n");
        return 2;
    }
    if (bad || optind != argc || !id.sub[0] || id.role == TM_ROLE_NONE || (kid && !key)) {
        usage();
        return 2;
    }

    int64_t now = (int64_t)time(NULL);
    id.iat = now;
    id.exp = now + ttl;
    /* nbf = 0 means "absent" in tm_identity; --nbf-in 0 still asks for one. */
    if (has_nbf)
        id.nbf = now + nbf_in;
    /* The token stands in for a login at the hospital just now: the proof of
     * identity a doctor needs before accepting a visit (docs/config.md). */
    if (has_auth_time)
        id.auth_time = now - auth_age;

    char *tok = key ? tm_jwt_mint_with_key_file(key, kid, &id) : tm_jwt_mint_hs256(secret, &id);
    if (!tok) {
        fprintf(stderr, "token: minting failed (%s)\n",
                key ? "cannot use the key file" : "bad input");
        return 1;
    }
    int rc = printf("%s\n", tok) < 0 || fflush(stdout) != 0 ? 1 : 0;
    free(tok);
    return rc;
}
