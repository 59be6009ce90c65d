/* Notifiers are eventfds: KVM's irqfd and ioeventfd take them directly. */
#define _GNU_SOURCE
#include "os_internal.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

int hvi_os_notifier_create(int *fd)
{
    int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e < 0)
        return hvi_error(-errno, "eventfd: %s", hvc_strerror(-errno));
    *fd = e;
    return 0;
}

bool hvi_os_notifier_drain(int fd)
{
    uint64_t count;
    return read(fd, &count, sizeof(count)) == sizeof(count);
}

void hvi_os_notifier_signal(int fd)
{
    uint64_t one = 1;
    /* only a counter at its maximum fails, and it is still signalled */
    ssize_t n = write(fd, &one, sizeof(one));
    (void)n;
}

void hvi_os_notifier_close(int fd)
{
    if (fd >= 0)
        close(fd);
}
