/* userfaultfd for post-copy migration (src/os/os.h): missing-page faults
 * on the guest memory mapping, filled with UFFDIO_COPY or UFFDIO_ZEROPAGE.
 * Works on memfd (shmem) and private anonymous memory alike. */
#define _GNU_SOURCE
#include "os_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

int hvi_os_uffd_open(int *out)
{
    int fd = -1, err = ENOSYS;
#ifdef SYS_userfaultfd
    fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    err = fd < 0 ? errno : 0;
#endif
    if (fd < 0) {
        /* Refused to unprivileged callers of the system call; the device
         * answers whoever may open it. */
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            if (fd < 0)
                err = errno;
            close(dev);
        }
    }
    if (fd < 0)
        return hvi_error(err == ENOSYS ? -ENOTSUP : -err,
                         "userfaultfd: %s (neither the system call nor "
                         "/dev/userfaultfd is usable)",
                         strerror(err));
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        int e = errno;
        close(fd);
        return hvi_error(-e, "userfaultfd: UFFDIO_API: %s", strerror(e));
    }
    *out = fd;
    return 0;
}

int hvi_os_uffd_register(int fd, void *hva, uint64_t len)
{
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)hva, .len = len},
        .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
        return hvi_error(-errno,
                         "userfaultfd: registering %#llx bytes of guest "
                         "memory: %s",
                         (unsigned long long)len, strerror(errno));
    uint64_t want = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_WAKE);
    if ((reg.ioctls & want) != want) {
        hvi_os_uffd_unregister(fd, hva, len);
        return hvi_error(-ENOTSUP, "userfaultfd: this memory cannot be "
                                   "filled with UFFDIO_COPY");
    }
    return 0;
}

int hvi_os_uffd_unregister(int fd, void *hva, uint64_t len)
{
    struct uffdio_range r = {.start = (uintptr_t)hva, .len = len};
    if (ioctl(fd, UFFDIO_UNREGISTER, &r) < 0)
        return hvi_error(-errno, "userfaultfd: unregistering: %s",
                         strerror(errno));
    /* UFFDIO_UNREGISTER wakes the waiters it finds before it changes the
     * mapping, and a fault taken under the per-VMA lock can be on its way
     * to the wait queue right then: it queues itself before it lets the
     * lock go, and the change waits for that lock, so once the call has
     * returned every such fault is queued. Seen on 6.18: a reader slept
     * in handle_userfault() for good after post-copy ended. Waking the
     * range again lets them fault normally. */
    if (ioctl(fd, UFFDIO_WAKE, &r) < 0)
        return hvi_error(-errno, "userfaultfd: waking after unregistering: %s",
                         strerror(errno));
    return 0;
}

int hvi_os_uffd_fill(int fd, void *dst, const void *src, uint64_t len,
                     bool zero)
{
    for (;;) {
        int r;
        int64_t done;
        if (zero) {
            struct uffdio_zeropage z = {
                .range = {.start = (uintptr_t)dst, .len = len}};
            r = ioctl(fd, UFFDIO_ZEROPAGE, &z);
            done = z.zeropage;
        } else {
            struct uffdio_copy c = {
                .dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len};
            r = ioctl(fd, UFFDIO_COPY, &c);
            done = c.copy;
        }
        if (r == 0)
            return 0;
        int e = errno;
        if (e == EAGAIN && done > 0 && (uint64_t)done < len) {
            /* Partly done: go on with the rest. */
            dst = (uint8_t *)dst + done;
            if (!zero)
                src = (const uint8_t *)src + done;
            len -= (uint64_t)done;
            continue;
        }
        if (e == EAGAIN)
            continue;
        if (e == EEXIST)
            return -EEXIST;
        return hvi_error(-e, "userfaultfd: filling %#llx bytes at %p: %s",
                         (unsigned long long)len, dst, strerror(e));
    }
}

int hvi_os_uffd_wake(int fd, void *hva, uint64_t len)
{
    struct uffdio_range r = {.start = (uintptr_t)hva, .len = len};
    if (ioctl(fd, UFFDIO_WAKE, &r) < 0)
        return hvi_error(-errno, "userfaultfd: UFFDIO_WAKE: %s",
                         strerror(errno));
    return 0;
}

int hvi_os_uffd_next(int fd, int stop_fd, int timeout_ms, uint64_t *addr,
                     bool *write)
{
    for (;;) {
        struct uffd_msg m;
        ssize_t n = read(fd, &m, sizeof(m));
        if (n == (ssize_t)sizeof(m)) {
            if (m.event != UFFD_EVENT_PAGEFAULT)
                continue;
            *addr = m.arg.pagefault.address;
            *write = m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;
            return 1;
        }
        if (n >= 0)
            return hvi_error(-EIO, "userfaultfd: short read of %zd bytes", n);
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return hvi_error(-errno, "userfaultfd: read: %s", strerror(errno));
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
                              {.fd = stop_fd, .events = POLLIN}};
        int r = poll(p, stop_fd >= 0 ? 2 : 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hvi_error(-errno, "userfaultfd: poll: %s", strerror(errno));
        if (r == 0 || (stop_fd >= 0 && p[1].revents))
            return 0;
    }
}
