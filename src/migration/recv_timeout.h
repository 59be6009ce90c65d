/* The receiver's limit on a stalled sender (hvc_restore_options::
 * timeout_ms): a live receive gives up when nothing arrives for that long
 * while the connection stays open (in.c polls a plain descriptor before
 * each read; this wraps the TLS reader). */
#ifndef HVCORE_MIGRATION_RECV_TIMEOUT_H
#define HVCORE_MIGRATION_RECV_TIMEOUT_H

#include <stddef.h>
#include <stdint.h>

struct hvi_tls;

/* The limit in ms (0: none) for the option's value (0: the default). */
uint32_t hvi_recv_timeout_ms(uint32_t option);

/* The receiver's stream over TLS (a blocking socket): an hvc_stream read
 * callback on a struct hvi_tls_in, -ETIMEDOUT after timeout_ms of nothing
 * (0: never). */
struct hvi_tls_in {
    struct hvi_tls *t;
    int fd;
    uint32_t timeout_ms;
};
int64_t hvi_tls_in_read(void *opaque, void *buf, size_t len);

#endif
