/* Migration addresses: "unix:PATH" and "tcp:HOST:PORT" (HOST a name, an
 * IPv4 address or an IPv6 address in brackets), parsed as hostile input,
 * and the sockets for them (hvc_migrate_connect, hvc_migrate_listen). */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_ADDR 4096

static int bad(const char *addr, const char *why)
{
    return hvi_error(-EINVAL, "migration address \"%s\": %s", HVI_QUOTE(addr),
                     why);
}

int hvi_migrate_parse(const char *addr, bool listening,
                      struct hvi_migrate_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (!addr)
        return hvi_error(-EINVAL, "migration address: NULL");
    size_t len = strnlen(addr, MAX_ADDR + 1);
    if (len > MAX_ADDR)
        return bad(addr, "too long");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)addr[i] < 0x20 || addr[i] == 0x7f)
            return bad(addr, "has a control character");
    if (strncmp(addr, "unix:", 5) == 0) {
        const char *path = addr + 5;
        if (!*path)
            return bad(addr, "unix: needs a path");
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return bad(addr, "the path is too long for a unix socket");
        out->unix_socket = true;
        snprintf(out->path, sizeof(out->path), "%s", path);
        return 0;
    }
    if (strncmp(addr, "tcp:", 4) != 0)
        return bad(addr, "not unix:PATH or tcp:HOST:PORT");
    const char *host = addr + 4, *colon = strrchr(host, ':');
    if (!colon)
        return bad(addr, "tcp: needs HOST:PORT");
    size_t hl = (size_t)(colon - host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host++;
        hl -= 2;
    } else if (memchr(host, ':', hl)) {
        return bad(addr, "an IPv6 host goes in brackets: tcp:[ADDR]:PORT");
    }
    if (!hl || hl >= sizeof(out->host))
        return bad(addr, hl ? "the host is too long" : "the host is empty");
    if (memchr(host, '[', hl) || memchr(host, ']', hl) ||
        memchr(host, ' ', hl) || memchr(host, '/', hl))
        return bad(addr, "the host is not a name or an address");
    const char *port = colon + 1;
    unsigned long p = 0;
    if (!*port || strlen(port) > 5)
        return bad(addr, "the port is not a number from 1 to 65535");
    for (const char *c = port; *c; c++) {
        if (*c < '0' || *c > '9')
            return bad(addr, "the port is not a number from 1 to 65535");
        p = p * 10 + (unsigned long)(*c - '0');
    }
    if (p > 65535 || (p == 0 && !listening))
        return bad(addr, listening ? "the port is not a number from 0 to "
                                     "65535"
                                   : "the port is not a number from 1 to "
                                     "65535");
    memcpy(out->host, host, hl);
    out->host[hl] = 0;
    out->port = (uint16_t)p;
    return 0;
}

static int unix_socket(const struct hvi_migrate_addr *a, const char *addr,
                       bool listening)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hvi_error(-errno, "migration address \"%s\": socket: %s",
                         HVI_QUOTE(addr), hvc_strerror(-errno));
    int r;
    if (listening) {
        struct stat st;
        if (lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(a->path); /* a stale socket of an earlier run */
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                    listen(fd, 8) < 0
                ? -errno
                : 0;
    } else {
        do
            r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno
                                                                    : 0;
        while (r == -EINTR);
    }
    if (r < 0) {
        close(fd);
        return hvi_error(r, "migration address \"%s\": cannot %s: %s",
                         HVI_QUOTE(addr), listening ? "listen" : "connect",
                         hvc_strerror(r));
    }
    return fd;
}

static int tcp_socket(const struct hvi_migrate_addr *a, const char *addr,
                      bool listening)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (listening ? AI_PASSIVE : 0);
    char port[8];
    snprintf(port, sizeof(port), "%u", a->port);
    int g = getaddrinfo(a->host, port, &hints, &res);
    if (g != 0)
        return hvi_error(g == EAI_SYSTEM ? -errno : -EHOSTUNREACH,
                         "migration address \"%s\": cannot resolve the host: "
                         "%s",
                         HVI_QUOTE(addr), gai_strerror(g));
    int r = -EHOSTUNREACH, fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        int one = 1;
        if (listening) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            r = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 8) < 0
                    ? -errno
                    : 0;
        } else {
            do
                r = connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 ? -errno : 0;
            while (r == -EINTR);
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        if (r == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return hvi_error(r, "migration address \"%s\": cannot %s: %s",
                         HVI_QUOTE(addr), listening ? "listen" : "connect",
                         hvc_strerror(r));
    return fd;
}

int hvc_migrate_connect(const char *addr)
{
    struct hvi_migrate_addr a;
    int r = hvi_migrate_parse(addr, false, &a);
    if (r < 0)
        return r;
    return a.unix_socket ? unix_socket(&a, addr, false)
                         : tcp_socket(&a, addr, false);
}

int hvc_migrate_listen(const char *addr)
{
    struct hvi_migrate_addr a;
    int r = hvi_migrate_parse(addr, true, &a);
    if (r < 0)
        return r;
    return a.unix_socket ? unix_socket(&a, addr, true)
                         : tcp_socket(&a, addr, true);
}
