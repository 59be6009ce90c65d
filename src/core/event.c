/* The VM's event thread: an epoll loop serving file-descriptor watches for
 * device models. Started on the first watch, stopped by hvc_vm_destroy(). */
#include "internal.h"

#include "../os/os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct hvi_watch {
    int fd;
    hvc_fd_fn fn;
    void *opaque;
};

_Thread_local hvc_vm *hvi_event_vm;

static void *loop(void *arg)
{
    hvc_vm *vm = arg;
    struct hvi_os_ready ready[16];
    hvi_event_vm = vm;
    int n;
    while ((n = hvi_os_poller_wait(vm->ev_poller, ready, 16)) > 0) {
        for (int i = 0; i < n; i++) {
            /* ev_lock is held across the callback, so unwatch waits for
             * it; watch_lock only while the table is read. */
            pthread_mutex_lock(&vm->ev_lock);
            pthread_mutex_lock(&vm->watch_lock);
            struct hvi_watch cur = {-1, NULL, NULL};
            for (size_t w = 0; w < vm->nr_watches; w++)
                if (vm->watches[w].fd == ready[i].fd)
                    cur = vm->watches[w];
            pthread_mutex_unlock(&vm->watch_lock);
            if (cur.fn)
                cur.fn(cur.opaque, cur.fd, ready[i].events);
            pthread_mutex_unlock(&vm->ev_lock);
        }
    }
    /* Nobody waits on this thread's result, so a failed wait would end
     * every watch in silence: say so. */
    if (n < 0)
        hvi_log(HVC_LOG_ERROR,
                "VM event thread: waiting for descriptors failed (%s); "
                "watched descriptors are no longer served",
                hvc_strerror(n));
    return NULL;
}

/* Caller holds watch_lock. */
static int start(hvc_vm *vm)
{
    if (vm->ev_running)
        return 0;
    int r = hvi_os_poller_create(&vm->ev_poller);
    if (r < 0)
        return r;
    r = pthread_create(&vm->ev_thread, NULL, loop, vm);
    if (r) {
        hvi_os_poller_destroy(vm->ev_poller);
        vm->ev_poller = NULL;
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
    /* Only the table's lock: a watch never waits for a running callback,
     * so device code may watch from anywhere (internal.h). */
    pthread_mutex_lock(&vm->watch_lock);
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
            r = hvi_os_poller_add(vm->ev_poller, fd, events);
            if (r == 0)
                w[vm->nr_watches++] = (struct hvi_watch){fd, fn, opaque};
        }
    }
    pthread_mutex_unlock(&vm->watch_lock);
    return r;
}

int hvc_vm_unwatch_fd(hvc_vm *vm, int fd)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_vm_unwatch_fd: VM is NULL");
    /* Off the event thread, wait for a callback that is running: once this
     * returns, the callback is not running and will not run again. */
    bool on_loop = hvi_event_vm == vm;
    if (!on_loop)
        pthread_mutex_lock(&vm->ev_lock);
    pthread_mutex_lock(&vm->watch_lock);
    int r = -ENOENT;
    for (size_t i = 0; i < vm->nr_watches; i++) {
        if (vm->watches[i].fd != fd)
            continue;
        hvi_os_poller_del(vm->ev_poller, fd);
        vm->watches[i] = vm->watches[--vm->nr_watches];
        r = 0;
        break;
    }
    pthread_mutex_unlock(&vm->watch_lock);
    if (!on_loop)
        pthread_mutex_unlock(&vm->ev_lock);
    /* Only now: a successful call leaves hvc_last_error() alone. */
    if (r < 0)
        hvi_error(r, "descriptor %d is not watched", fd);
    return r;
}

void hvi_event_stop(hvc_vm *vm)
{
    if (vm->ev_running) {
        hvi_os_poller_stop(vm->ev_poller);
        pthread_join(vm->ev_thread, NULL);
        hvi_os_poller_destroy(vm->ev_poller);
        vm->ev_poller = NULL;
        vm->ev_running = false;
    }
    free(vm->watches);
    vm->watches = NULL;
    vm->nr_watches = 0;
}
