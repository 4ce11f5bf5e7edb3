/*
 * test_conn_limit.c - the per-address limit on unauthenticated connections,
 * with real TCP connections on loopback: the limit per address, another
 * address unaffected, a slot freed by a close (noticed without being told)
 * and by authentication, and a reused fd number counted as a new connection.
 */
#include "telemed/conn_limit.h"
#include "tm_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener;
static struct sockaddr_in where;

static void listen_loopback(void)
{
    listener = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(listener >= 0);
    where = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(listener, (struct sockaddr *)&where, sizeof(where)) == 0);
    socklen_t len = sizeof(where);
    CHECK(getsockname(listener, (struct sockaddr *)&where, &len) == 0);
    CHECK(listen(listener, 64) == 0);
}

/* Connects from source address src (127.0.0.x) and accepts: *client gets
 * the client end, the accepted (server) end is returned. */
static int connect_from(const char *src, int *client)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c >= 0);
    struct sockaddr_in from = {.sin_family = AF_INET};
    CHECK(inet_pton(AF_INET, src, &from.sin_addr) == 1);
    CHECK(bind(c, (struct sockaddr *)&from, sizeof(from)) == 0);
    CHECK(connect(c, (struct sockaddr *)&where, sizeof(where)) == 0);
    int s = accept(listener, NULL, NULL);
    CHECK(s >= 0);
    *client = c;
    return s;
}

static void test_limit_per_address(void)
{
    tm_conn_limit *cl = tm_conn_limit_new(2);
    int c1, c2, c3, c4;
    int s1 = connect_from("127.0.0.1", &c1), s2 = connect_from("127.0.0.1", &c2);
    int s3 = connect_from("127.0.0.1", &c3), s4 = connect_from("127.0.0.2", &c4);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s1), 0);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s2), 0);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s3), TM_ERATE);
    CHECK_EQ_INT(tm_conn_limit_count(cl, s1), 2);
    /* another address has its own allowance */
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s4), 0);
    CHECK_EQ_INT(tm_conn_limit_count(cl, s4), 1);
    /* an authenticated connection stops counting */
    tm_conn_limit_authenticated(cl, s1);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s3), 0);
    CHECK_EQ_INT(tm_conn_limit_count(cl, s3), 2);
    close(s1), close(s2), close(s3), close(s4);
    close(c1), close(c2), close(c3), close(c4);
    tm_conn_limit_free(cl);
}

static void test_close_frees_a_slot_without_being_told(void)
{
    tm_conn_limit *cl = tm_conn_limit_new(1);
    int c1, c2;
    int s1 = connect_from("127.0.0.3", &c1);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s1), 0);
    int s2 = connect_from("127.0.0.3", &c2);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s2), TM_ERATE);
    close(s2);
    close(c2);
    close(s1); /* the first one goes away; nobody calls the limiter */
    close(c1);
    int s3 = connect_from("127.0.0.3", &c1);
    /* the kernel hands out the lowest free fd: most likely s1's number again */
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s3), 0);
    CHECK_EQ_INT(tm_conn_limit_count(cl, s3), 1);
    int s4 = connect_from("127.0.0.3", &c2);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, s4), TM_ERATE);
    close(s3), close(s4), close(c1), close(c2);
    tm_conn_limit_free(cl);
}

static void test_not_a_socket(void)
{
    tm_conn_limit *cl = tm_conn_limit_new(4);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, -1), TM_EINVAL);
    CHECK_EQ_INT(tm_conn_limit_admit(cl, 0), TM_EINVAL); /* stdin: no peer */
    tm_conn_limit_authenticated(cl, 12345);              /* unknown fd: harmless */
    tm_conn_limit_free(cl);
    tm_conn_limit_free(NULL);
}

int main(void)
{
    listen_loopback();
    RUN(test_limit_per_address);
    RUN(test_close_frees_a_slot_without_being_told);
    RUN(test_not_a_socket);
    close(listener);
    TEST_DONE();
}
