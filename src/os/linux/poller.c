/* Waiting on descriptors with epoll, stopped through an eventfd. */
#define _GNU_SOURCE
#include "os_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct hvi_os_poller {
    int epoll;
    int stop;
};

int hvi_os_poller_create(hvi_os_poller **out)
{
    hvi_os_poller *p = calloc(1, sizeof(*p));
    if (!p)
        return hvi_error(-ENOMEM, "out of memory starting an event loop");
    p->epoll = epoll_create1(EPOLL_CLOEXEC);
    p->stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p->stop};
    if (p->epoll < 0 || p->stop < 0 ||
        epoll_ctl(p->epoll, EPOLL_CTL_ADD, p->stop, &ev) < 0) {
        int e = -errno;
        hvi_os_poller_destroy(p);
        return hvi_error(e, "starting an event loop: %s", hvc_strerror(e));
    }
    *out = p;
    return 0;
}

int hvi_os_poller_add(hvi_os_poller *p, int fd, uint32_t events)
{
    struct epoll_event ev = {0};
    ev.events = ((events & HVC_FD_READABLE) ? EPOLLIN : 0) |
                ((events & HVC_FD_WRITABLE) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (epoll_ctl(p->epoll, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    int e = -errno;
    /* EPERM: a regular file or directory, which epoll cannot wait on. */
    return hvi_error(e == -EPERM ? -EINVAL : e,
                     "descriptor %d cannot be watched: %s", fd,
                     hvc_strerror(e));
}

void hvi_os_poller_del(hvi_os_poller *p, int fd)
{
    epoll_ctl(p->epoll, EPOLL_CTL_DEL, fd, NULL);
}

int hvi_os_poller_wait(hvi_os_poller *p, struct hvi_os_ready *ready, int max)
{
    struct epoll_event ev[16];
    if (max > 16)
        max = 16;
    for (;;) {
        int n = epoll_wait(p->epoll, ev, max, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno; /* not with a valid epoll fd; the caller logs */
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.fd == p->stop)
                return 0;
            uint32_t e = 0;
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                e |= HVC_FD_READABLE;
            if (ev[i].events & EPOLLOUT)
                e |= HVC_FD_WRITABLE;
            ready[k++] = (struct hvi_os_ready){ev[i].data.fd, e};
        }
        if (k)
            return k;
    }
}

void hvi_os_poller_stop(hvi_os_poller *p)
{
    uint64_t one = 1;
    ssize_t n = write(p->stop, &one, sizeof(one));
    (void)n; /* a full counter still wakes the waiter */
}

void hvi_os_poller_destroy(hvi_os_poller *p)
{
    if (!p)
        return;
    if (p->epoll >= 0)
        close(p->epoll);
    if (p->stop >= 0)
        close(p->stop);
    free(p);
}
