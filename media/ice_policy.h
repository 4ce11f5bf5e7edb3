/*
 * ice_policy.h - which remote ICE candidates the server sends connectivity
 * checks to. A participant names the candidates, so without a policy it can
 * make the server send STUN to any address: ports on the server's own host,
 * link-local or multicast groups, hosts inside the hospital network.
 *
 * The rule: never an unspecified, multicast or reserved address; otherwise
 * only families and scopes (loopback, link-local, private, public) that the
 * server's own media addresses serve - a server with a private or public
 * address of a family serves the public internet of that family too - or an
 * address inside one of the configured networks (media_candidate_networks).
 * So a server on 127.0.0.1 checks loopback candidates and nothing else, and
 * one on a public address checks no 10.x host unless told to.
 *
 * Private to media/. Made by tm_media_new, read-only afterwards; used on the
 * control thread, where candidates come in.
 */
#ifndef TELEMED_MEDIA_ICE_POLICY_H
#define TELEMED_MEDIA_ICE_POLICY_H

#include "telemed/common.h"

typedef struct tm__ice_policy tm__ice_policy;

/* addresses: the media addresses (NULL-terminated, borrowed); public_ip: the
 * NAT 1:1 address or NULL; networks: comma-separated CIDRs ("10.20.0.0/16,
 * fd00::/8") or NULL. Returns NULL with *err (new string, g_free) when an
 * entry of networks is not a network. */
tm__ice_policy *tm__ice_policy_new(char *const *addresses, const char *public_ip,
                                   const char *networks, char **err);
void tm__ice_policy_free(tm__ice_policy *p); /* accepts NULL */

/* 0 when the server may check address (a numeric IPv4 or IPv6 address),
 * TM_EUNSUPPORTED when it must not (also for a host name, e.g. mDNS). */
int tm__ice_policy_check(const tm__ice_policy *p, const char *address);

#endif
