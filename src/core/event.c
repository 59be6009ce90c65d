/* The VM's event thread: an epoll loop serving file-descriptor watches for
 * device models. Started on the first watch, stopped by hvc_vm_destroy(). */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct hvi_watch {
    int fd;
    hvc_fd_fn fn;
    void *opaque;
};

static void *loop(void *arg)
{
    hvc_vm *vm = arg;
    struct epoll_event ev[16];
    for (;;) {
        int n = epoll_wait(vm->ev_epoll, ev, 16, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return NULL;
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == vm->ev_stop)
                return NULL;
            uint32_t events = 0;
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                events |= HVC_FD_READABLE;
            if (ev[i].events & EPOLLOUT)
                events |= HVC_FD_WRITABLE;
            /* Held across the callback, so unwatch waits for it. */
            pthread_mutex_lock(&vm->ev_lock);
            for (size_t w = 0; w < vm->nr_watches; w++) {
                if (vm->watches[w].fd == fd) {
                    struct hvi_watch cur = vm->watches[w];
                    cur.fn(cur.opaque, fd, events);
                    break;
                }
            }
            pthread_mutex_unlock(&vm->ev_lock);
        }
    }
}

/* Caller holds ev_lock. */
static int start(hvc_vm *vm)
{
    if (vm->ev_running)
        return 0;
    vm->ev_epoll = epoll_create1(EPOLL_CLOEXEC);
    vm->ev_stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->ev_epoll < 0 || vm->ev_stop < 0) {
        int e = -errno;
        if (vm->ev_epoll >= 0)
            close(vm->ev_epoll);
        if (vm->ev_stop >= 0)
            close(vm->ev_stop);
        return hvi_error(e, "starting the VM's event loop: %s",
                         hvc_strerror(e));
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = vm->ev_stop};
    epoll_ctl(vm->ev_epoll, EPOLL_CTL_ADD, vm->ev_stop, &ev);
    int r = pthread_create(&vm->ev_thread, NULL, loop, vm);
    if (r) {
        close(vm->ev_epoll);
        close(vm->ev_stop);
        return hvi_error(-r, "starting the VM's event thread: %s",
                         hvc_strerror(-r));
    }
    vm->ev_running = true;
    return 0;
}

int hvc_vm_watch_fd(hvc_vm *vm, int fd, uint32_t events, hvc_fd_fn fn,
                    void *opaque)
{
    if (!vm || !fn)
        return hvi_error(-EINVAL, "hvc_vm_watch_fd: NULL argument");
    if (!events || (events & ~(uint32_t)(HVC_FD_READABLE | HVC_FD_WRITABLE)))
        return hvi_error(-EINVAL,
                         "hvc_vm_watch_fd(%d): events 0x%x are "
                         "empty or unknown",
                         fd, events);
    bool on_loop =
        vm->ev_running && pthread_equal(pthread_self(), vm->ev_thread);
    if (!on_loop)
        pthread_mutex_lock(&vm->ev_lock);
    int r = 0;
    for (size_t i = 0; i < vm->nr_watches; i++)
        if (vm->watches[i].fd == fd)
            r = hvi_error(-EEXIST, "descriptor %d is already watched", fd);
    if (r == 0)
        r = start(vm);
    if (r == 0) {
        struct hvi_watch *w =
            realloc(vm->watches, (vm->nr_watches + 1) * sizeof(*w));
        if (!w) {
            r = hvi_error(-ENOMEM, "out of memory watching descriptor %d", fd);
        } else {
            vm->watches = w;
            struct epoll_event ev = {0};
            ev.events = ((events & HVC_FD_READABLE) ? EPOLLIN : 0) |
                        ((events & HVC_FD_WRITABLE) ? EPOLLOUT : 0);
            ev.data.fd = fd;
            if (epoll_ctl(vm->ev_epoll, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int e = -errno;
                r = hvi_error(e == -EPERM ? -EINVAL : e,
                              "descriptor %d cannot be watched: %s", fd,
                              hvc_strerror(e));
            } else {
                w[vm->nr_watches++] = (struct hvi_watch){fd, fn, opaque};
            }
        }
    }
    if (!on_loop)
        pthread_mutex_unlock(&vm->ev_lock);
    return r;
}

int hvc_vm_unwatch_fd(hvc_vm *vm, int fd)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_unwatch_fd: VM is NULL");
    bool on_loop =
        vm->ev_running && pthread_equal(pthread_self(), vm->ev_thread);
    if (!on_loop)
        pthread_mutex_lock(&vm->ev_lock);
    int r = hvi_error(-ENOENT, "descriptor %d is not watched", fd);
    for (size_t i = 0; i < vm->nr_watches; i++) {
        if (vm->watches[i].fd != fd)
            continue;
        epoll_ctl(vm->ev_epoll, EPOLL_CTL_DEL, fd, NULL);
        vm->watches[i] = vm->watches[--vm->nr_watches];
        r = 0;
        break;
    }
    if (!on_loop)
        pthread_mutex_unlock(&vm->ev_lock);
    return r;
}

void hvi_event_stop(hvc_vm *vm)
{
    if (vm->ev_running) {
        uint64_t one = 1;
        ssize_t n = write(vm->ev_stop, &one, sizeof(one));
        (void)n;
        pthread_join(vm->ev_thread, NULL);
        close(vm->ev_epoll);
        close(vm->ev_stop);
        vm->ev_running = false;
    }
    free(vm->watches);
    vm->watches = NULL;
    vm->nr_watches = 0;
}
