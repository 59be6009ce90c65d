/* Parked vCPU threads wait on a POSIX semaphore: sem_post() is on the
 * async-signal-safe list, so a kick from a signal handler can wake them. */
#include "os_internal.h"

#include <errno.h>

int hvi_os_wake_init(hvi_os_wake *w)
{
    if (sem_init(&w->sem, 0, 0) < 0)
        return hvi_error(-errno, "sem_init: %s", hvc_strerror(-errno));
    return 0;
}

void hvi_os_wake_destroy(hvi_os_wake *w)
{
    sem_destroy(&w->sem);
}

void hvi_os_wake_post(hvi_os_wake *w)
{
    sem_post(&w->sem); /* EOVERFLOW: enough wake-ups are pending */
}

void hvi_os_wake_wait(hvi_os_wake *w)
{
    while (sem_wait(&w->sem) < 0 && errno == EINTR)
        ;
}

void hvi_os_wake_drain(hvi_os_wake *w)
{
    while (sem_trywait(&w->sem) == 0)
        ;
}
