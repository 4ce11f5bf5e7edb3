/*
 * ice_policy.c - the remote-candidate address policy (ice_policy.h): an
 * address is classified by family and scope, and checked against the scopes
 * the server's own media addresses serve and the configured networks.
 *
 * Owns: the parsed networks. Pure; runs on the control thread.
 */
#include <stdbool.h>
#include <string.h>

#include <gio/gio.h>

#include "ice_policy.h"

typedef enum {
    SCOPE_NEVER, /* unspecified, multicast, broadcast, reserved */
    SCOPE_LOOPBACK,
    SCOPE_LINK_LOCAL,
    SCOPE_PRIVATE, /* RFC 1918, shared address space (RFC 6598), unique local (RFC 4193) */
    SCOPE_PUBLIC,
    N_SCOPES
} scope;

enum { FAM_V4, FAM_V6, N_FAMS };

struct tm__ice_policy {
    bool served[N_FAMS][N_SCOPES];
    GPtrArray *networks; /* GInetAddressMask */
};

static scope scope_v4(const guint8 *a)
{
    if (a[0] == 0 || a[0] >= 224)
        return SCOPE_NEVER;
    if (a[0] == 127)
        return SCOPE_LOOPBACK;
    if (a[0] == 169 && a[1] == 254)
        return SCOPE_LINK_LOCAL;
    if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
        (a[0] == 100 && (a[1] & 0xc0) == 64))
        return SCOPE_PRIVATE;
    return SCOPE_PUBLIC;
}

static scope scope_v6(const guint8 *a)
{
    static const guint8 zero[16];
    if (memcmp(a, zero, 15) == 0)
        return a[15] == 1 ? SCOPE_LOOPBACK : SCOPE_NEVER; /* ::1, :: */
    if (a[0] == 0xff)
        return SCOPE_NEVER;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return SCOPE_LINK_LOCAL;
    if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0))
        return SCOPE_PRIVATE; /* fc00::/7, and the old site-local fec0::/10 */
    return SCOPE_PUBLIC;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 one. */
static bool classify(GInetAddress *addr, int *fam, scope *sc)
{
    const guint8 *b = g_inet_address_to_bytes(addr);
    static const guint8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    switch (g_inet_address_get_family(addr)) {
    case G_SOCKET_FAMILY_IPV4:
        *fam = FAM_V4;
        *sc = scope_v4(b);
        return true;
    case G_SOCKET_FAMILY_IPV6:
        if (memcmp(b, mapped, sizeof mapped) == 0) {
            *fam = FAM_V4;
            *sc = scope_v4(b + 12);
        } else {
            *fam = FAM_V6;
            *sc = scope_v6(b);
        }
        return true;
    default:
        return false;
    }
}

static void serve(tm__ice_policy *p, const char *address)
{
    GInetAddress *a = address && *address ? g_inet_address_new_from_string(address) : NULL;
    int fam;
    scope sc;
    if (a && classify(a, &fam, &sc) && sc != SCOPE_NEVER) {
        p->served[fam][sc] = true;
        /* Reachable beyond its own host, the server talks to the internet. */
        if (sc == SCOPE_PRIVATE || sc == SCOPE_PUBLIC)
            p->served[fam][SCOPE_PUBLIC] = true;
    }
    if (a)
        g_object_unref(a);
}

tm__ice_policy *tm__ice_policy_new(char *const *addresses, const char *public_ip,
                                   const char *networks, char **err)
{
    tm__ice_policy *p = g_new0(tm__ice_policy, 1);
    p->networks = g_ptr_array_new_with_free_func(g_object_unref);
    for (char *const *a = addresses; a && *a; a++)
        serve(p, *a);
    serve(p, public_ip);
    char **nets = g_strsplit(networks ? networks : "", ",", -1);
    for (char **n = nets; *n; n++) {
        g_strstrip(*n);
        if (!**n)
            continue;
        GError *gerr = NULL;
        GInetAddressMask *mask = g_inet_address_mask_new_from_string(*n, &gerr);
        if (!mask) {
            if (err)
                *err = g_strdup_printf("'%s' is not a network (address/prefix)", *n);
            g_error_free(gerr);
            g_strfreev(nets);
            tm__ice_policy_free(p);
            return NULL;
        }
        g_ptr_array_add(p->networks, mask);
    }
    g_strfreev(nets);
    return p;
}

void tm__ice_policy_free(tm__ice_policy *p)
{
    if (!p)
        return;
    g_ptr_array_unref(p->networks);
    g_free(p);
}

static bool in_networks(const tm__ice_policy *p, GInetAddress *a)
{
    for (guint i = 0; i < p->networks->len; i++)
        if (g_inet_address_mask_matches(g_ptr_array_index(p->networks, i), a))
            return true;
    return false;
}

int tm__ice_policy_check(const tm__ice_policy *p, const char *address)
{
    GInetAddress *a = address ? g_inet_address_new_from_string(address) : NULL;
    if (!a)
        return TM_EUNSUPPORTED;
    int fam;
    scope sc;
    bool ok =
        classify(a, &fam, &sc) && sc != SCOPE_NEVER && (p->served[fam][sc] || in_networks(p, a));
    g_object_unref(a);
    return ok ? 0 : TM_EUNSUPPORTED;
}
