/* A live receive's limit on a stalled sender (recv_timeout.h). */
#include "recv_timeout.h"

#include "transport.h"

#include <hvcore/migration.h>

#include <errno.h>
#include <poll.h>

uint32_t hvi_recv_timeout_ms(uint32_t option)
{
    if (option == 0)
        return HVC_RESTORE_TIMEOUT_DEFAULT_MS;
    if (option == HVC_RESTORE_NO_TIMEOUT)
        return 0;
    return option > INT32_MAX ? INT32_MAX : option; /* poll()'s int */
}

int64_t hvi_tls_in_read(void *opaque, void *buf, size_t len)
{
    struct hvi_tls_in *ti = opaque;
    for (;;) {
        /* bytes OpenSSL holds already need no wait */
        if (ti->timeout_ms && !hvi_tls_pending(ti->t)) {
            struct pollfd pf = {.fd = ti->fd, .events = POLLIN};
            int pr = poll(&pf, 1, (int)ti->timeout_ms);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr == 0)
                return -ETIMEDOUT;
        }
        int64_t n = hvi_tls_read(ti->t, buf, len, NULL);
        if (n != -EAGAIN)
            return n;
    }
}
