/* Preloaded into tether by test_opa.py: makes sock_diag answer a lookup of a unix socket by
 * inode number, when it asks for the owner (UDIAG_SHOW_UID), with the socket COLLIDE_INO
 * instead, reported under the number asked, as the kernel answers once inode numbers have
 * wrapped at 2^32 and another socket with the same number comes first in its table.  Every
 * other call goes through unchanged.
 *
 *   cc -shared -fPIC -o diag_collide.so diag_collide.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static unsigned asked; /* the number tether asked for, while its answer is due */

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
               socklen_t tolen)
{
    static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (real == NULL)
        real = dlsym(RTLD_NEXT, "sendto");
    const struct nlmsghdr *h = buf;
    const char *other = getenv("COLLIDE_INO");
    if (other == NULL || to == NULL || to->sa_family != AF_NETLINK ||
        len < NLMSG_LENGTH(sizeof(struct unix_diag_req)) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
        return real(fd, buf, len, flags, to, tolen);
    const struct unix_diag_req *r = NLMSG_DATA(h);
    if (r->sdiag_family != AF_UNIX || !(r->udiag_show & UDIAG_SHOW_UID))
        return real(fd, buf, len, flags, to, tolen);
    char copy[len];
    memcpy(copy, buf, len);
    struct unix_diag_req *w = NLMSG_DATA((struct nlmsghdr *)copy);
    asked = w->udiag_ino;
    w->udiag_ino = (unsigned)strtoul(other, NULL, 10);
    return real(fd, copy, len, flags, to, tolen);
}

ssize_t recvmsg(int fd, struct msghdr *mh, int flags)
{
    static ssize_t (*real)(int, struct msghdr *, int);
    if (real == NULL)
        real = dlsym(RTLD_NEXT, "recvmsg");
    ssize_t n = real(fd, mh, flags);
    if (asked != 0 && n >= (ssize_t)NLMSG_LENGTH(sizeof(struct unix_diag_msg))) {
        struct nlmsghdr *h = mh->msg_iov[0].iov_base;
        if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
            ((struct unix_diag_msg *)NLMSG_DATA(h))->udiag_ino = asked;
        asked = 0;
    }
    return n;
}
