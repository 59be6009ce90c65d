/* The remote destination's process (design: tests/migt_remote.h): serves
 * migtest's destination calls on descriptor 3 for one migt, then exits.
 * argv[1] is the backend it opens (its $HVT_BACKEND). Exit status 0 after
 * a close request or the peer's hang-up, 2 on a protocol error. */
#include "migt_remote.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SOCK 3

static migt m;
static size_t console_sent;

/* Exits when the test (the socket's peer) hangs up, whatever the main
 * thread is doing (a guest that never stops, a receive that waits). */
static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p = {SOCK, POLLRDHUP, 0};
        if (poll(&p, 1, -1) == 1 && (p.revents & (POLLRDHUP | POLLHUP)))
            _exit(0);
    }
    return NULL;
}

static int reply_text(int rc, const char *err, uint64_t value,
                      const void *data, size_t dlen)
{
    if (rc && !*err)
        err = "(the remote destination's call failed without a message)";
    struct migt_rsp a = {.rc = rc,
                         .nr_vcpus = m.nr_vcpus,
                         .value = value,
                         .err_len = rc ? strlen(err) : 0,
                         .data_len = dlen,
                         .console_len = m.console_len - console_sent};
    if (migt_send_all(SOCK, &a, sizeof(a), -1) < 0 ||
        migt_send_all(SOCK, err, a.err_len, -1) < 0 ||
        migt_send_all(SOCK, data, dlen, -1) < 0 ||
        migt_send_all(SOCK, m.console + console_sent, a.console_len, -1) < 0)
        _exit(0); /* the test went away */
    console_sent = m.console_len;
    return 0;
}

/* rc with the remote's hvc_last_error() when it failed. */
static int reply(int rc, uint64_t value, const void *data, size_t dlen)
{
    return reply_text(rc, rc ? hvc_last_error() : "", value, data, dlen);
}

/* migt_run_until() and migt_check() give a code and print the reason on
 * stderr (the test's: inherited); -EIO with the code and the library's
 * last message. */
static int reply_coded(int code, const char *what)
{
    if (!code)
        return reply(0, 0, NULL, 0);
    char why[1024];
    snprintf(why, sizeof(why),
             "the remote destination's %s failed with code %d (its reason "
             "is on stderr; the library's last message: %s)",
             what, code, hvc_last_error());
    return reply_text(-EIO, why, 0, NULL, 0);
}

static int serve(const struct migt_req *q, uint8_t *payload, int fd)
{
    const uint8_t *key = q->has_key ? q->key : NULL;
    const char *pass = q->has_pass ? q->pass : NULL;
    int r;
    switch (q->op) {
    case MIGT_OP_RESTORE_FILE:
        return reply(migt_restore_file(&m, (char *)payload, q->flags), 0,
                     NULL, 0);
    case MIGT_OP_RESTORE_FD:
        r = migt_restore_fd(&m, fd, key);
        return reply(r, 0, NULL, 0);
    case MIGT_OP_RECEIVE:
        return reply(migt_receive_fd(&m, fd, key, pass), 0, NULL, 0);
    case MIGT_OP_HANDOVER:
        if (q->flags & MIGT_HANDOVER_BLK) {
            uint64_t ino = 0;
            r = migt_handover_receive_blk(&m, fd, q->a, (uint32_t)q->b,
                                          (char *)payload, &ino);
            return reply(r, ino, NULL, 0);
        }
        return reply(migt_handover_receive(&m, fd), 0, NULL, 0);
    case MIGT_OP_RESTORE_MEM:
        return reply(migt_restore_mem(&m, payload, q->len, key, pass), 0,
                     NULL, 0);
    case MIGT_OP_RESTORE_MEM_VM: {
        hvc_hypervisor *hv = NULL;
        hvc_vm *vm = NULL;
        r = hvc_hypervisor_open(hvt_backend(), &hv);
        if (r == 0)
            r = migt_restore_mem_vm(hv, payload, q->len, key, pass, &vm);
        reply(r, 0, NULL, 0);
        /* served again for the next stream (migtest.c keeps this
         * process): nothing of this one stays */
        if (vm)
            hvc_vm_destroy(vm);
        if (hv)
            hvc_hypervisor_close(hv);
        return 0;
    }
    case MIGT_OP_RECEIVE_VM: {
        hvc_hypervisor *hv;
        hvc_vm *vm = NULL;
        r = hvc_hypervisor_open(hvt_backend(), &hv);
        if (r == 0)
            r = migt_receive_vm(hv, fd, q->flags & 1, &vm);
        reply(r, 0, NULL, 0);
        if (vm)
            hvc_vm_destroy(vm);
        return 0;
    }
    case MIGT_OP_RUN_UNTIL:
        return reply_coded(migt_run_until(&m, q->a), "migt_run_until");
    case MIGT_OP_CHECK:
        return reply_coded(migt_check(&m, q->a), "migt_check");
    case MIGT_OP_COUNT:
        return reply(0, migt_count(&m, (uint32_t)q->a), NULL, 0);
    case MIGT_OP_HASH:
        return reply(0, migt_ram_hash(m.vm), NULL, 0);
    case MIGT_OP_REG: {
        uint64_t v = 0;
        r = q->a < m.nr_vcpus && q->a < MIGT_MAX_VCPUS
                ? hvc_vcpu_get_reg(m.vcpu[q->a], (hvc_reg)q->b, &v)
                : -EINVAL;
        return reply(r, v, NULL, 0);
    }
    case MIGT_OP_READ: {
        if (q->b > (64u << 20))
            return reply(-EINVAL, 0, NULL, 0);
        uint8_t *d = malloc(q->b ? q->b : 1);
        r = d ? hvc_vm_read(m.vm, q->a, d, q->b) : -ENOMEM;
        reply(r, 0, d, r == 0 ? q->b : 0);
        free(d);
        return 0;
    }
    case MIGT_OP_SAVE_MEM: {
        /* migt_save_mem() asserts: no Criterion test here */
        size_t len = 0;
        uint8_t *d = NULL;
        hvc_save_options o = HVC_SAVE_OPTIONS_INIT;
        o.key = key;
        o.passphrase = pass;
        int mfd = memfd_create("migt-save", MFD_CLOEXEC);
        r = mfd < 0 ? -errno : hvc_vm_pause(m.vm);
        if (r == 0) {
            r = hvc_vm_save_fd(m.vm, mfd, &o);
            int rr = hvc_vm_resume(m.vm);
            r = r ? r : rr;
        }
        off_t end = r == 0 ? lseek(mfd, 0, SEEK_END) : 0;
        if (r == 0 && (end <= 0 || !(d = malloc((size_t)end)) ||
                       pread(mfd, d, (size_t)end, 0) != end))
            r = -EIO;
        len = r == 0 ? (size_t)end : 0;
        reply(r, 0, d, len);
        free(d);
        if (mfd >= 0)
            close(mfd);
        return 0;
    }
    case MIGT_OP_SAVE_FILE:
        return reply(migt_save_file(&m, (char *)payload), 0, NULL, 0);
    case MIGT_OP_CLOSE:
        migt_close(&m);
        reply(0, 0, NULL, 0);
        _exit(0);
    }
    fprintf(stderr, "remote destination: unknown request %u\n", q->op);
    _exit(2);
}

int main(int argc, char **argv)
{
    /* never a remote of its own (migt_remote_wanted()) */
    setenv("MIGT_REMOTE_SERVER", "1", 1);
    if (argc > 1 && argv[1][0])
        setenv("HVT_BACKEND", argv[1], 1);
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) != 0)
        return 2;
    for (;;) {
        struct migt_req q;
        int fd = -1;
        if (migt_recv_all(SOCK, &q, sizeof(q), &fd) < 0)
            return 0;
        if (q.len > (1ull << 31))
            return 2;
        uint8_t *payload = malloc(q.len + 1);
        if (!payload || migt_recv_all(SOCK, payload, q.len, NULL) < 0)
            return 2;
        payload[q.len] = 0;
        q.pass[sizeof(q.pass) - 1] = 0;
        serve(&q, payload, fd);
        free(payload);
        if (fd >= 0)
            close(fd);
    }
}
