/*
 * test_ice_policy.c - which remote candidate addresses get connectivity
 * checks (media/ice_policy.c), for servers on loopback, private, public and
 * IPv6 addresses, with and without configured networks.
 */
#include <glib.h>

#include "ice_policy.h"
#include "tm_test.h"

static tm__ice_policy *policy(const char *addresses, const char *public_ip, const char *networks)
{
    char **addrs = g_strsplit(addresses, ",", -1);
    char *err = NULL;
    tm__ice_policy *p = tm__ice_policy_new(addrs, public_ip, networks, &err);
    g_strfreev(addrs);
    CHECK(p != NULL && err == NULL);
    return p;
}

#define OK(p, a) CHECK_EQ_INT(tm__ice_policy_check(p, a), 0)
#define NO(p, a) CHECK_EQ_INT(tm__ice_policy_check(p, a), TM_EUNSUPPORTED)

/* Never, whatever the server serves or is told. */
static void test_never(void)
{
    tm__ice_policy *p =
        policy("127.0.0.1,10.0.0.5,203.0.113.5,2001:db8::1", NULL, "0.0.0.0/0,::/0");
    NO(p, "0.0.0.0");
    NO(p, "0.1.2.3");
    NO(p, "224.0.0.251");
    NO(p, "239.1.1.1");
    NO(p, "240.0.0.1");
    NO(p, "255.255.255.255");
    NO(p, "::");
    NO(p, "ff02::1");
    NO(p, "host.local"); /* mDNS: not an address libnice can check */
    NO(p, "");
    NO(p, NULL);
    tm__ice_policy_free(p);
}

/* A server on loopback (the tests) checks loopback and nothing else. */
static void test_loopback_server(void)
{
    tm__ice_policy *p = policy("127.0.0.1", NULL, NULL);
    OK(p, "127.0.0.1");
    OK(p, "127.5.6.7");
    NO(p, "::1"); /* no IPv6 media address */
    NO(p, "10.1.2.3");
    NO(p, "192.168.1.1");
    NO(p, "169.254.1.1");
    NO(p, "8.8.8.8");
    tm__ice_policy_free(p);
}

/* On a private address: its own scope and the internet, not loopback or link-local. */
static void test_private_server(void)
{
    tm__ice_policy *p = policy("10.0.0.5", NULL, NULL);
    OK(p, "10.9.9.9");
    OK(p, "192.168.4.4");
    OK(p, "172.31.0.1");
    OK(p, "100.64.1.1");
    OK(p, "8.8.8.8");
    NO(p, "127.0.0.1");
    NO(p, "169.254.1.1");
    NO(p, "2001:db8::2");
    OK(p, "172.32.0.1"); /* just outside 172.16/12: public */
    tm__ice_policy_free(p);
}

/* On a public address: no host inside a private network unless configured. */
static void test_public_server_and_networks(void)
{
    tm__ice_policy *p = policy("203.0.113.5", NULL, NULL);
    OK(p, "198.51.100.7");
    NO(p, "10.20.1.1");
    NO(p, "::ffff:10.20.1.1"); /* IPv4-mapped: judged as IPv4 */
    OK(p, "::ffff:198.51.100.7");
    tm__ice_policy_free(p);

    p = policy("203.0.113.5", NULL, " 10.20.0.0/16 , fd00::/16");
    OK(p, "10.20.1.1");
    NO(p, "10.21.1.1");
    OK(p, "fd00::7"); /* a configured network needs no IPv6 media address */
    NO(p, "fd01::7");
    tm__ice_policy_free(p);

    /* A private media address behind NAT 1:1 with a public one: both scopes. */
    p = policy("10.0.0.5", "203.0.113.5", NULL);
    OK(p, "10.1.1.1");
    OK(p, "198.51.100.7");
    tm__ice_policy_free(p);
}

static void test_ipv6_server(void)
{
    tm__ice_policy *p = policy("2001:db8::1", NULL, NULL);
    OK(p, "2001:db8::2");
    OK(p, "2a00:1450::1");
    NO(p, "fd00::1");
    NO(p, "fe80::1");
    NO(p, "::1");
    NO(p, "198.51.100.7"); /* no IPv4 media address */
    tm__ice_policy_free(p);
}

static void test_bad_network(void)
{
    char *addrs[] = {"127.0.0.1", NULL};
    char *err = NULL;
    CHECK(tm__ice_policy_new(addrs, NULL, "10.0.0.0/8,hospital", &err) == NULL);
    CHECK(err && strstr(err, "'hospital' is not a network"));
    g_free(err);
    err = NULL;
    CHECK(tm__ice_policy_new(addrs, NULL, "10.0.0.0/33", &err) == NULL);
    g_free(err);
}

int main(void)
{
    RUN(test_never);
    RUN(test_loopback_server);
    RUN(test_private_server);
    RUN(test_public_server_and_networks);
    RUN(test_ipv6_server);
    RUN(test_bad_network);
    TEST_DONE();
}
