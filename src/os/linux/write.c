/* write(2) without SIGPIPE (src/os/os.h), for descriptors the library
 * did not open and cannot send(MSG_NOSIGNAL) on: a caller's pipe or file
 * for a saved stream, a console pipe. */
#define _GNU_SOURCE
#include "os_internal.h"

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

ssize_t hvi_os_write_nosigpipe(int fd, const void *p, size_t n)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    ssize_t w = write(fd, p, n);
    int e = errno;
    if (w < 0 && e == EPIPE && !sigismember(&old, SIGPIPE)) {
        /* the one this write raised, before it could be delivered */
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return w;
}
