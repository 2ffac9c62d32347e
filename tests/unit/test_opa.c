/* Unit tests: how the OPA engine reads /proc/net/tcp to learn who serves a plain-HTTP
 * connection on loopback.  The lines are the kernel's own format (net/ipv4/tcp_ipv4.c,
 * net/ipv6/tcp_ipv6.c). */
#include "../../policy/policy.h"
#include "test.h"

#define HEAD                                                                                       \
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "  \
    "inode\n"
/* A full socket's line: its owner's uid and its socket file's inode.  One not yet
 * accepted has no socket file (inode 0), and older kernels list it as uid 0.  A timewait
 * socket's: uid 0, no inode. */
#define SOCK(local, remote, st, uid, inode)                                                        \
    "   3: " local " " remote " " st " 00000000:00000000 00:00000000 00000000 " uid                \
    "        0 " inode " 1 0000000000000000 20 4 30 10 -1\n"
#define FULL(local, remote, st, uid) SOCK(local, remote, st, uid, "41234")
#define QUEUED(local, remote, uid) SOCK(local, remote, "01", uid, "0")
#define TIMEWAIT(local, remote, st)                                                                \
    "   7: " local " " remote " " st " 00000000:00000000 03:000016A1 00000000     0        0 0 3 " \
    "0000000000000000\n"

/* The connection: tether at 127.0.0.1:50000 (C350) to OPA at 127.0.0.1:8181 (1FF5). */
#define OPA "0100007F:1FF5"
#define US "0100007F:C350"

static enum tcp_line_kind kind(const char *line, unsigned *uid)
{
    *uid = 12345;
    return policy_opa_tcp_line(line, "127.0.0.1", 8181, "127.0.0.1", 50000, uid);
}

int main(void)
{
    unsigned uid;

    CHECK(kind(FULL(OPA, US, "01", " 1000"), &uid) == TCP_LINE_SERVER && uid == 1000,
          "the server's accepted end names its owner");
    /* A squatter slow to accept: the connection waits in its listener's queue, with no
     * socket file yet, listed as uid 0 by older kernels (Debian 12's 6.1). */
    CHECK(kind(QUEUED(OPA, US, "    0"), &uid) == TCP_LINE_QUEUED,
          "a connection not yet accepted (inode 0) owned by \"uid 0\" is not the server");
    CHECK(kind(QUEUED(OPA, US, "65534"), &uid) == TCP_LINE_QUEUED,
          "nor under its listener's uid, as newer kernels list it: tether waits for the accept");
    CHECK(kind(FULL(OPA, US, "03", "    0"), &uid) == TCP_LINE_QUEUED,
          "a connection still being accepted (SYN_RECV) is not yet the server end");
    /* A squatter that answers at once and closes: the kernel keeps its end as a timewait
     * socket, listed as uid 0.  That is no owner, and above all not root. */
    CHECK(kind(TIMEWAIT(OPA, US, "05"), &uid) == TCP_LINE_CLOSED,
          "a closed server end (FIN_WAIT2, timewait) owned by \"uid 0\" is not the server");
    CHECK(kind(TIMEWAIT(OPA, US, "06"), &uid) == TCP_LINE_CLOSED,
          "a closed server end (TIME_WAIT) is not the server");
    CHECK(kind(FULL(OPA, US, "04", "    0"), &uid) == TCP_LINE_CLOSED,
          "a server end that sent its FIN (FIN_WAIT1) is not the server, even root's");
    CHECK(kind(FULL(OPA, US, "09", "    0"), &uid) == TCP_LINE_CLOSED,
          "a server end in LAST_ACK is not the server");

    /* A listener is nobody's proof: a squatter's socket bound to `lo` (SO_BINDTODEVICE) or to
     * 127.0.0.1 takes connections from root's on every address. */
    CHECK(kind(FULL(OPA, "00000000:0000", "0A", "    0"), &uid) == TCP_LINE_OTHER,
          "a listener on the server's address and port, root's, is not the server end");
    CHECK(kind(FULL("00000000:1FF5", "00000000:0000", "0A", "    0"), &uid) == TCP_LINE_OTHER,
          "nor one on every address");
    CHECK(kind(FULL("0100007F:1FF6", US, "01", "    0"), &uid) == TCP_LINE_OTHER, "another port");
    CHECK(kind(FULL(OPA, "0100007F:C351", "01", "    0"), &uid) == TCP_LINE_OTHER,
          "another connection to the same server");
    CHECK(kind(FULL(US, OPA, "01", "    0"), &uid) == TCP_LINE_OTHER,
          "tether's own end of the connection");
    CHECK(kind(FULL("0200007F:1FF5", US, "01", "    0"), &uid) == TCP_LINE_OTHER,
          "a connection from another address");

    /* tcp6: a dual-stack listener's end of an IPv4 connection, IPv4-mapped. */
    CHECK(kind(FULL("0000000000000000FFFF00000100007F:1FF5",
                    "0000000000000000FFFF00000100007F:C350", "01", " 1000"),
               &uid) == TCP_LINE_SERVER &&
              uid == 1000,
          "tcp6: an IPv4-mapped server end");
    CHECK(kind(FULL("00000000000000000000000000000000:1FF5",
                    "00000000000000000000000000000000:0000", "0A", "    0"),
               &uid) == TCP_LINE_OTHER,
          "tcp6: nor a dual-stack listener on every address");
    CHECK(policy_opa_tcp_line(FULL("00000000000000000000000001000000:1FF5",
                                   "00000000000000000000000001000000:C350", "01", " 1000"),
                              "::1", 8181, "::1", 50000, &uid) == TCP_LINE_SERVER &&
              uid == 1000,
          "tcp6: ::1");

    CHECK(kind(HEAD, &uid) == TCP_LINE_OTHER, "the header line");
    CHECK(kind("   3: 0100007F:1FF5 0100007F:C350 01\n", &uid) == TCP_LINE_OTHER,
          "a line cut short names no owner");
    CHECK(kind("   3: 0100007F1:1FF5 0100007F:C350 01 0:0 0:0 0 0 0 0\n", &uid) == TCP_LINE_OTHER,
          "an address of the wrong length");
    CHECK(policy_opa_tcp_line(FULL(OPA, US, "01", " 1000"), "localhost", 8181, "127.0.0.1", 50000,
                              &uid) == TCP_LINE_OTHER,
          "an address that is not numeric matches nothing");
    return test_done();
}
