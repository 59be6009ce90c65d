/* SIGPIPE held off (src/os/os.h), for writes the library cannot make
 * with send(MSG_NOSIGNAL): a caller's pipe or file for a saved stream, a
 * console pipe, and OpenSSL's socket writes. */
#define _GNU_SOURCE
#include "os_internal.h"

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

void hvi_os_nosigpipe_begin(hvi_os_nosigpipe *s)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &s->old);
    s->was_pending =
        sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
}

void hvi_os_nosigpipe_end(hvi_os_nosigpipe *s)
{
    int e = errno;
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    if (!s->was_pending && !sigismember(&s->old, SIGPIPE) &&
        sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        /* raised in between: taken before it could be delivered */
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &s->old, NULL);
    errno = e;
}

ssize_t hvi_os_write_nosigpipe(int fd, const void *p, size_t n)
{
    hvi_os_nosigpipe s;
    hvi_os_nosigpipe_begin(&s);
    ssize_t w = write(fd, p, n);
    hvi_os_nosigpipe_end(&s);
    return w;
}
