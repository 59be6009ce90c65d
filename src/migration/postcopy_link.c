/* Post-copy, the destination's link to the source (postcopy_recv.h):
 * the messages it writes (requests, DONE, FAILED), the record that opens
 * post-copy and the page channel, and, over TLS, the streams' sessions,
 * each shared by a reading thread and writing ones under its own lock. */
#define _GNU_SOURCE
#include "par.h"
#include "postcopy_recv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The hvc_stream read of a stream over TLS (struct pc_tls). */
static int64_t tls_read(void *opaque, void *buf, size_t len)
{
    struct pc_tls *l = opaque;
    for (;;) {
        short want = POLLIN;
        pthread_mutex_lock(&l->lock);
        int64_t n = hvi_tls_read(l->t, buf, len, &want);
        pthread_mutex_unlock(&l->lock);
        if (n != -EAGAIN)
            return n;
        struct pollfd pf = {.fd = l->fd, .events = want};
        int pr = poll(&pf, 1, l->timeout_ms ? (int)l->timeout_ms : -1);
        if (pr < 0 && errno != EINTR)
            return hvi_error(-errno, "post-copy: poll: %s",
                             hvc_strerror(-errno));
        if (pr == 0)
            return -ETIMEDOUT;
    }
}

/* Writes all of @p len bytes into the session of @p l. With @p nowait,
 * -EAGAIN when another thread is in the session; once the session took
 * bytes, the rest goes whatever it takes (TLS wants the write asked
 * again until it went). */
static int tls_write(struct pc_tls *l, const uint8_t *p, size_t len,
                     bool nowait)
{
    if (!nowait)
        pthread_mutex_lock(&l->lock);
    else if (pthread_mutex_trylock(&l->lock) != 0)
        return -EAGAIN;
    int r = 0;
    for (size_t done = 0; done < len;) {
        short want = POLLOUT;
        int64_t n = hvi_tls_write(l->t, p + done, len - done, &want);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n != -EAGAIN) {
            r = n < 0 ? (int)n : -EPIPE;
            break;
        }
        pthread_mutex_unlock(&l->lock);
        struct pollfd pf = {.fd = l->fd, .events = want};
        int pr = poll(&pf, 1, -1);
        int e = errno;
        pthread_mutex_lock(&l->lock);
        if (pr < 0 && e != EINTR) {
            r = hvi_error(-e, "post-copy: poll: %s", hvc_strerror(-e));
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* @p nowait (a request from the VM's event thread, which never waits on
 * the link): -EAGAIN, nothing written, when the message cannot go at once
 * (another writer holds the socket, or it is full); once a byte went, the
 * rest goes whatever it takes. */
int hvi_pc_send_msg(struct hvi_postcopy *pc, uint16_t kind, uint32_t a,
                    uint64_t b, uint32_t c, bool nowait)
{
    uint8_t m[HVI_PC_MSG_SIZE] = {0};
    hvi_put16(m, kind);
    hvi_put32(m + 4, a);
    hvi_put64(m + 8, b);
    hvi_put32(m + 16, c);
    hvi_put32(m + 20, hvi_crc32c(0, m, 20));
    int r = 0;
    if (!nowait)
        pthread_mutex_lock(&pc->wlock);
    else if (pthread_mutex_trylock(&pc->wlock) != 0)
        return -EAGAIN;
    int ctl = atomic_load(&pc->ctl_fd);
    struct pc_tls *l = ctl == pc->pfd ? &pc->chan.tls : &pc->main.tls;
    if (l->t) {
        r = tls_write(l, m, sizeof(m), nowait);
        pthread_mutex_unlock(&pc->wlock);
        return r;
    }
    for (size_t done = 0; done < sizeof(m);) {
        int fd = atomic_load(&pc->ctl_fd);
        int flags = MSG_NOSIGNAL | (nowait && !done ? MSG_DONTWAIT : 0);
        ssize_t w = send(fd, m + done, sizeof(m) - done, flags);
        if (w < 0 && !done && flags & MSG_DONTWAIT &&
            (errno == EAGAIN || errno == EWOULDBLOCK)) {
            r = -EAGAIN;
            break;
        }
        if (w < 0 && errno == ENOTSOCK)
            w = write(fd, m + done, sizeof(m) - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r = w < 0 ? -errno : -EPIPE;
            break;
        }
        done += (size_t)w;
    }
    pthread_mutex_unlock(&pc->wlock);
    return r;
}

/* The record that opens post-copy: the page channel, if any. */
int hvi_pc_open_channel(struct hvi_postcopy *pc)
{
    char rec[8];
    size_t got = 0;
    int fd = -1;
    while (pc->main.tls.t && got < sizeof(rec)) { /* no descriptor passed */
        int64_t n = tls_read(&pc->main.tls, rec + got, sizeof(rec) - got);
        if (n == -ETIMEDOUT)
            return hvi_error(-ETIMEDOUT,
                             "post-copy: the source stalled: nothing "
                             "arrived for %u ms before its pages",
                             pc->main.tls.timeout_ms);
        if (n <= 0) {
            char why[384];
            snprintf(why, sizeof(why), "%s",
                     n < 0 ? hvc_last_error() : "the connection closed");
            return hvi_error(n < 0 ? (int)n : -ECONNABORTED,
                             "post-copy: the source did not open post-copy: "
                             "%s",
                             why);
        }
        got += (size_t)n;
    }
    while (got < sizeof(rec)) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int))];
        } ctl;
        uint32_t tmo = pc->main.in.timeout_ms; /* a stalled source */
        struct pollfd pf = {.fd = pc->fd, .events = POLLIN};
        int pr = tmo ? poll(&pf, 1, (int)tmo) : 1;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            if (fd >= 0)
                close(fd);
            return hvi_error(-ETIMEDOUT,
                             "post-copy: the source stalled: nothing "
                             "arrived for %u ms before its pages",
                             tmo);
        }
        struct iovec iov = {.iov_base = rec + got, .iov_len = 8 - got};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = ctl.buf,
                           .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(pc->fd, &m, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == ENOTSOCK)
            n = read(pc->fd, rec + got, 8 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (fd >= 0)
                close(fd);
            return hvi_error(n < 0 ? -errno : -ECONNABORTED,
                             "post-copy: the source did not open post-copy: "
                             "%s",
                             n < 0 ? hvc_strerror(-errno)
                                   : "the connection closed");
        }
        for (struct cmsghdr *h = n > 0 && m.msg_controllen ? CMSG_FIRSTHDR(&m)
                                                           : NULL;
             h; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
                h->cmsg_len == CMSG_LEN(sizeof(int))) {
                int f;
                memcpy(&f, CMSG_DATA(h), sizeof(int));
                if (fd >= 0)
                    close(f); /* one channel only */
                else
                    fd = f;
            }
        got += (size_t)n;
    }
    if (fd < 0 && memcmp(rec, HVI_PC_CHANNEL_CONNECTED, 8) == 0) {
        /* The channel is a connection of its own (over TCP). */
        if (pc->listen_fd < 0)
            return hvi_error(-EBADMSG,
                             "post-copy: the source connects a page "
                             "channel that was not announced, or this "
                             "receiver has no listening socket");
        struct hvi_tls *tls = NULL;
        uint32_t idx;
        /* the source says nothing on the connection meanwhile: its
         * end (or anything) means it is gone */
        hvi_par_accept_watch(pc->fd);
        int r = hvi_par_accept(pc->listen_fd, pc->tls_on ? &pc->tls_opts : NULL,
                               pc->session, HVI_PAR_PAGE_CHANNEL,
                               HVI_PAR_PAGE_CHANNEL, NULL, HVI_PAR_ACCEPT_MS,
                               &fd, &tls, &idx);
        hvi_par_accept_watch(-1);
        close(pc->listen_fd);
        pc->listen_fd = -1;
        pc->chan.tls.t = tls; /* NULL: plain */
        if (r < 0) {
            char why[512];
            snprintf(why, sizeof(why), "%s", hvc_last_error());
            return hvi_error(r, "post-copy: the page channel: %s", why);
        }
        memcpy(rec, HVI_PC_CHANNEL, 8);
    }
    bool chan = memcmp(rec, HVI_PC_CHANNEL, 8) == 0;
    if ((!chan && memcmp(rec, HVI_PC_NO_CHANNEL, 8) != 0) ||
        chan != (fd >= 0)) {
        if (fd >= 0)
            close(fd);
        return hvi_error(
            -EBADMSG, "post-copy: the source opened post-copy with \"%s\"%s",
            HVI_QUOTE_N(rec, 8), chan ? " but passed no page channel" : "");
    }
    if (fd < 0)
        return 0;
    pc->pfd = fd;
    pc->chan.in.fd = fd;
    pc->chan.in.off = HVI_PC_CHANNEL_OFFSET;
    if (pc->chan.tls.t) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return hvi_error(-errno, "post-copy: the page channel: fcntl: %s",
                             hvc_strerror(-errno));
        pc->chan.tls.fd = fd;
        pc->chan.in.fd = -1;
        pc->chan.in.s.size = sizeof(pc->chan.in.s);
        pc->chan.in.s.read = tls_read;
        pc->chan.in.s.opaque = &pc->chan.tls;
    }
    int r = pc->main.in.crypt
                ? hvi_crypt_clone(pc->main.in.crypt, &pc->chan.in.crypt)
                : 0;
    if (r < 0)
        return r;
    atomic_store(&pc->ctl_fd, fd);
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void hvi_pc_set_tls(hvc_vm *vm, struct hvi_tls *tls,
                    const hvc_migrate_tls *opts)
{
    struct hvi_postcopy *pc = vm->postcopy;
    pc->main.tls.t = tls;
    pc->main.tls.fd = pc->fd;
    pc->main.tls.timeout_ms = pc->main.in.timeout_ms;
    pc->main.in.fd = -1;
    pc->main.in.s = (hvc_stream)HVC_STREAM_INIT;
    pc->main.in.s.read = tls_read;
    pc->main.in.s.opaque = &pc->main.tls;
    /* a copy that cannot be made fails the channel's handshake, later */
    pc->tls_on = true;
    pc->tls_opts.size = sizeof(pc->tls_opts);
    pc->tls_opts.flags = opts->flags;
    pc->tls_opts.cert = dup_or_null(opts->cert);
    pc->tls_opts.key = dup_or_null(opts->key);
    pc->tls_opts.ca = dup_or_null(opts->ca);
    pc->tls_opts.server_name = dup_or_null(opts->server_name);
}
