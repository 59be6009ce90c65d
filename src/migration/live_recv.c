/* Live migration, the receiving side (docs/MIGRATION.md, "Live
 * migration"): hvc_vm_migrate_receive() reads the stream (through TLS when
 * asked), with the extra memory connections the sender opens (par_recv.c),
 * and acknowledges it; a post-copy stream goes on in postcopy_recv.c. */
#define _GNU_SOURCE
#include "par.h"
#include "postcopy.h"
#include "recv_timeout.h"
#include "stream.h"
#include "transport.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_ack(int fd, struct hvi_tls *tls, int status)
{
    uint8_t a[HVI_ACK_SIZE];
    memcpy(a, HVI_ACK_MAGIC, 8);
    hvi_put32(a + 8, (uint32_t)status);
    hvi_put32(a + 12, hvi_crc32c(0, a, 12));
    size_t done = 0;
    while (done < sizeof(a)) {
        if (tls) {
            int64_t t = hvi_tls_write(tls, a + done, sizeof(a) - done, NULL);
            if (t <= 0)
                return t < 0 ? (int)t : -EPIPE;
            done += (size_t)t;
            continue;
        }
        ssize_t n = send(fd, a + done, sizeof(a) - done, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, a + done, sizeof(a) - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        done += (size_t)n;
    }
    return 0;
}

int hvc_vm_migrate_receive(hvc_hypervisor *hv, int fd,
                           const hvc_restore_options *opts, hvc_vm **out)
{
    if (!hv || fd < 0 || !out)
        return hvi_error(-EINVAL, "hvc_vm_migrate_receive: %s",
                         fd < 0 ? "negative descriptor" : "NULL argument");
    hvc_vm *vm = NULL;
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    struct hvi_tls *tls = NULL;
    int r = 0;
    if (opts && (r = hvi_copy_options(&o, sizeof(o), opts,
                                      offsetof(hvc_restore_options, tls),
                                      "hvc_restore_options")) < 0)
        return r;
    struct hvi_in in = {
        .fd = fd, .live = true, .listen_fd = o.listen_fd, .main_fd = fd};
    if (o.reserved2)
        return hvi_error(-EINVAL,
                         "hvc_restore_options: reserved2 is %u, "
                         "not 0",
                         o.reserved2);
    in.tls = o.tls;
    /* a stalled sender is given up on (post-copy's receiver too) */
    in.timeout_ms = hvi_recv_timeout_ms(o.timeout_ms);
    struct hvi_tls_in ti = {NULL, fd, in.timeout_ms};
    if (o.tls) {
        if ((r = hvi_tls_accept(fd, o.tls, &tls)) < 0) {
            char why[512];
            snprintf(why, sizeof(why), "%s", hvc_last_error());
            return hvi_error(r, "incoming migration: %s", why);
        }
        in.fd = -1;
        in.s = (hvc_stream)HVC_STREAM_INIT;
        ti.t = tls;
        in.s.read = hvi_tls_in_read;
        in.s.opaque = &ti;
    }
    o.tls = NULL;
    r = hvi_restore_in(hv, &in, &o, &vm);
    hvi_par_in_free(&in); /* the memory connections ended, or failed */
    if (r == 0 && in.plan && (r = hvi_pc_prepare(vm, fd, &in, in.plan)) < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        hvc_vm_destroy(vm);
        vm = NULL;
        hvi_error(r, "%s", why);
    }
    bool postcopy = in.plan != NULL && r == 0;
    if (postcopy && tls) /* the pages come through it too */
        hvi_pc_set_tls(vm, tls, in.tls);
    /* restore.c held the devices when the plan came: the VM is the
     * caller's from here (or destroyed), its pages where they belong */
    if (vm && in.plan && !postcopy)
        hvi_devices_hold(vm, false);
    hvi_pc_plan_free(in.plan);
    hvi_crypt_free(in.crypt); /* NULL when post-copy took it */
    if (r < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        send_ack(fd, tls, r); /* the sender may be gone: nothing to add */
        hvi_tls_free(tls);
        return hvi_error(r, "incoming migration: %s%s",
                         r == -ENODATA ? "the source went away before the "
                                         "end of the stream: "
                                       : "",
                         why);
    }
    int w = send_ack(fd, tls, 0);
    if (!postcopy)
        hvi_tls_free(tls); /* else the post-copy state's */
    if (w < 0) {
        if (postcopy)
            hvi_devices_hold(vm, false);
        hvc_vm_destroy(vm);
        return hvi_error(w,
                         "incoming migration: the stream was complete, but "
                         "acknowledging it to the source failed (%s); the "
                         "source keeps the guest",
                         hvc_strerror(w));
    }
    /* From here the source never runs the guest again. */
    if (postcopy && (r = hvi_pc_start(vm)) < 0) {
        hvi_devices_hold(vm, false);
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        shutdown(fd, SHUT_RDWR); /* the source sees the link fail */
        hvc_vm_destroy(vm);
        return hvi_error(r,
                         "incoming post-copy migration: %s; the guest is "
                         "lost",
                         why);
    }
    if (postcopy)
        hvi_devices_hold(vm, false);
    *out = vm;
    return 0;
}
