/*
 * jwt.h - identity: JSON Web Tokens (compact JWS) as bearer credentials.
 *
 * A token says who is calling (sub), as what (role) and until when (exp).
 * The verifier holds the trust anchors: an optional HS256 shared secret and
 * any number of RS256 / ES256 (P-256) public keys of a hospital identity
 * provider. Only HS256, RS256 and ES256 are accepted; "none" never is, and
 * an algorithm is refused outright when no key of its kind is configured,
 * which closes the classic alg-confusion hole (an HS256 token "signed" with
 * an RSA public key as its secret).
 *
 * Threads: a verifier is built once (new/add_key) and is then read-only, so
 * tm_jwt_verify may be called from any thread at the same time. Minting is
 * stateless. Nothing here logs.
 */
#ifndef TELEMED_JWT_H
#define TELEMED_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "telemed/common.h"

/* Longest token tm_jwt_verify looks at; anything longer is refused unread. */
#define TM_JWT_MAX_LEN 8192

typedef enum {
    TM_ROLE_NONE = 0,
    TM_ROLE_PATIENT,
    TM_ROLE_DOCTOR,
    TM_ROLE_SUPERVISOR,
    TM_ROLE_ADMIN,
    /* A visit's guest (issue 17): signed in by a one-time guest link, never
     * by a token (tm_role_parse refuses it). */
    TM_ROLE_GUEST
} tm_role;

/* "patient", "doctor", "supervisor", "admin"; "none" for anything else. Static string. */
const char *tm_role_name(tm_role role);
/* Parses one of the four role names (exact, lower case). Returns 0 or TM_EINVAL
 * (then *out is TM_ROLE_NONE). */
int tm_role_parse(const char *name, tm_role *out);

typedef struct tm_identity {
    char sub[128]; /* subject: patient/doctor/staff id */
    tm_role role;
    char name[128];        /* display name; never logged */
    char dept[64];         /* department id, optional ("" if absent) */
    char hospital[64];     /* "hosp" claim, optional */
    char institution[64];  /* "inst" claim: the alliance member, optional (issue 18) */
    int64_t exp, nbf, iat; /* seconds; 0 when absent (exp is REQUIRED for verify) */
    /* When and how the identity system last checked the person (OpenID
     * Connect auth_time, RFC 8176 amr joined by ','): a doctor's proof of
     * identity before a visit. 0 and "" when absent. */
    int64_t auth_time;
    char amr[64];
} tm_identity;

typedef struct tm_jwt_verifier tm_jwt_verifier;

/* A new verifier. hs256_secret may be NULL or "" (then HS256 tokens are refused);
 * the secret is copied. Returns NULL only when out of memory. Caller frees with
 * tm_jwt_verifier_free. */
tm_jwt_verifier *tm_jwt_verifier_new(const char *hs256_secret);

/* Adds a public key for RS256 (RSA, >= 2048 bits) or ES256 (EC P-256). pem is PEM
 * text of length len (need not be NUL-terminated): an SPKI "PUBLIC KEY", an
 * "RSA PUBLIC KEY", or a "CERTIFICATE" whose key is used. kid is optional and
 * copied: a keyed entry is tried only for tokens whose header kid equals it; a
 * NULL-kid entry is tried for tokens with no kid or with a kid that no entry
 * names. Returns 0, TM_EINVAL (unparsable PEM), TM_EUNSUPPORTED (other key type,
 * curve or a too-small RSA key) or TM_ENOMEM. Not thread-safe against verify. */
int tm_jwt_verifier_add_key_pem(tm_jwt_verifier *v, const char *pem, size_t len, const char *kid);

/* Reads a PEM file (at most 64 KiB) and adds its key with no kid. Returns 0,
 * TM_EIO when it cannot be read, or as tm_jwt_verifier_add_key_pem. */
int tm_jwt_verifier_add_key_file(tm_jwt_verifier *v, const char *path);

/* Caps a token's lifetime: exp - iat (or exp - now when iat is absent) above
 * max_s seconds is refused as "lifetime_too_long". 0 (the default) leaves exp
 * uncapped. Not thread-safe against verify: call it while building. */
void tm_jwt_verifier_set_max_lifetime(tm_jwt_verifier *v, int64_t max_s);

/* Frees the verifier and its keys; accepts NULL. */
void tm_jwt_verifier_free(tm_jwt_verifier *v);

/* Verifies a compact JWS of len bytes (need not be NUL-terminated).
 * Returns 0 and fills *out, or TM_EAUTH with a static reason in *reason (reason
 * may be NULL). Reasons: "malformed", "too_large", "alg_not_allowed", "no_key",
 * "bad_signature", "expired", "not_yet_valid", "issued_in_future",
 * "lifetime_too_long", "missing_claim", "bad_claim", "bad_role" (also for an
 * auth_time that is not a time or an amr that is not an array of short
 * strings, at most 63 bytes joined). On failure
 * *out is zeroed. TM_ENOMEM ("internal") when out of memory.
 * Requires sub, role (one of the four) and exp; checks exp/nbf against now_s with
 * leeway_s seconds of clock skew allowed, refuses an iat later than now_s +
 * leeway_s and applies the lifetime cap. The signature is checked before the
 * claims are parsed. */
int tm_jwt_verify(const tm_jwt_verifier *v, const char *token, size_t len, int64_t now_s,
                  int leeway_s, tm_identity *out, const char **reason);

/* Mints an HS256 token for id. Writes sub, role, name, dept, hosp and inst (when
 * non-empty), iat (id->iat, or the current time when 0), nbf and auth_time
 * (when non-zero), amr (when non-empty, split at ',') and exp. Returns a new NUL-terminated string,
 * caller frees with free(); NULL on failure (empty secret or sub, role NONE, out of memory). */
char *tm_jwt_mint_hs256(const char *secret, const tm_identity *id);

/* Mints RS256 (RSA key) or ES256 (P-256 key), chosen by the key in the PEM
 * private key file; kid (optional) goes into the header. Claims as
 * tm_jwt_mint_hs256. Returns a new string, caller frees with free(); NULL on
 * failure. */
char *tm_jwt_mint_with_key_file(const char *private_key_path, const char *kid,
                                const tm_identity *id);

/* The `telemed-server token` subcommand; argv[0] is "token". Options:
 *   --sub ID --role patient|doctor|supervisor|admin   (required)
 *   --name NAME --dept ID --hosp ID --inst ID
 *   --ttl SECONDS (default 3600; negative mints an already-expired token)
 *   --nbf-in SECONDS (nbf = now + SECONDS)
 *   --auth-age SECONDS (auth_time = now - SECONDS; default 0: identity checked
 *     now, as a hospital's login would) | --no-auth-time;  --amr LIST (e.g. face)
 *   --secret S (overrides default_secret)  |  --key PEM_PATH [--kid K]
 * Prints the token and a newline on stdout and returns 0; on bad usage prints
 * usage to stderr and returns 2; returns 1 when minting fails. Uses getopt_long
 * (resets optind), so call it from the main thread only. */
int tm_token_main(const char *default_secret, int argc, char **argv);

/* Internal, exposed for the tests and the fuzz target: unpadded base64url.
 * encode writes 4*ceil(n/3) at most plus a NUL; returns the length written or
 * TM_ETOOBIG when out is too small. decode rejects padding, whitespace, any
 * character outside the alphabet, an impossible length (len % 4 == 1) and
 * non-zero trailing bits; returns the decoded length, TM_EINVAL or TM_ETOOBIG. */
int tm__b64url_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
int tm__b64url_decode(const char *in, size_t n, uint8_t *out, size_t outlen);

#endif
