/* A receiver whose sender stalls (the connection open, nothing
 * arriving) gives up after hvc_restore_options::timeout_ms with
 * -ETIMEDOUT and starts nothing, whether the sender stopped mid-stream or
 * never sent a byte; the option's sizes. hvc_vm_when_present() outside
 * post-copy and its arguments. (A stall during post-copy, and the
 * wake-ups during one: test_migration_postcopy_dev.c.) */
#include "migtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

TestSuite(migration_timeout, .init = hvt_require_kvm, .timeout = 120);

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void sleep_us(unsigned us)
{
    struct timespec t = {us / 1000000u, (long)(us % 1000000u) * 1000L};
    nanosleep(&t, NULL);
}

/* Feeds the first @p n bytes of a stream, then keeps the connection
 * open and silent until told to stop. */
struct feeder {
    int fd;
    const uint8_t *buf;
    size_t n;
    atomic_int stop;
    pthread_t t;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    migt_write_all(f->fd, f->buf, f->n);
    while (!atomic_load(&f->stop))
        sleep_us(1000);
    return NULL;
}

static int add_com1(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)opaque, (void)user, (void)len;
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    return hvc_serial_create(vm, &so, NULL);
}

/* @p cut: bytes of the stream sent, as a share of it in per mille */
static void stalled_receive(unsigned cut_pm)
{
    static migt m;
    migt_open(&m, 1, NULL);
    HVT_OK(migt_run_until(&m, 3));
    size_t len = 0;
    uint8_t *stream = migt_save_mem(&m, NULL, NULL, &len);
    cr_assert_not_null(stream);
    size_t cut = len / 1000 * cut_pm;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct feeder f = {.fd = sv[0], .buf = stream, .n = cut};
    cr_assert_eq(pthread_create(&f.t, NULL, feed, &f), 0);
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.timeout_ms = 250;
    ro.setup = add_com1;
    hvc_vm *vm = NULL;
    uint64_t t0 = now_ns();
    int r = hvc_vm_migrate_receive(hv, sv[1], &ro, &vm);
    uint64_t ms = (now_ns() - t0) / 1000000u;
    const char *err = hvc_last_error();
    fprintf(stderr,
            "a sender stalled after %zu of %zu bytes: %d after %llu "
            "ms: %s\n",
            cut, len, r, (unsigned long long)ms, err);
    cr_assert_eq(r, -ETIMEDOUT, "receive: %d (%s)", r, err);
    cr_assert_null(vm, "a VM was started");
    cr_assert(strstr(err, "stalled") && strstr(err, "250 ms"), "%s", err);
    cr_assert_geq(ms, 240);
    cr_assert_lt(ms, 5000);
    /* the sender hears the refusal (the status word of the
     * acknowledgement), the connection still open */
    atomic_store(&f.stop, 1);
    pthread_join(f.t, NULL);
    uint8_t ack[64];
    ssize_t got = recv(sv[0], ack, sizeof(ack), MSG_DONTWAIT);
    cr_assert_gt(got, 0, "the sender was not told");
    close(sv[0]);
    close(sv[1]);
    free(stream);
    hvc_hypervisor_close(hv);
    migt_close(&m);
}

Test(migration_timeout, stalled_sender_mid_stream)
{
    stalled_receive(600); /* past the memory's start */
}

Test(migration_timeout, silent_sender)
{
    stalled_receive(0);
}

/* The option: a caller compiled before it (a shorter size) gets the
 * default; NO_TIMEOUT is accepted. */
Test(migration_timeout, timeout_option_sizes)
{
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    cr_assert_eq(ro.timeout_ms, 0);
    cr_assert_eq(ro.size, sizeof(hvc_restore_options));
    cr_assert_eq(HVC_RESTORE_TIMEOUT_DEFAULT_MS, 30000u);
    /* an old caller's size: the receive starts (and fails on the empty,
     * closed connection, not on the options) */
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[0]);
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    ro.size = (uint32_t)offsetof(hvc_restore_options, timeout_ms);
    hvc_vm *vm = NULL;
    HVT_ERR(hvc_vm_migrate_receive(hv, sv[1], &ro, &vm), -ENODATA);
    ro.size = sizeof(ro);
    ro.timeout_ms = HVC_RESTORE_NO_TIMEOUT;
    HVT_ERR(hvc_vm_migrate_receive(hv, sv[1], &ro, &vm), -ENODATA);
    cr_assert_null(vm);
    close(sv[1]);
    hvc_hypervisor_close(hv);
}

/* hvc_vm_when_present() outside post-copy: present, nothing written; its
 * arguments. */
Test(migration_timeout, when_present_arguments)
{
    hvt t;
    hvt_open(&t, 0);
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert_geq(fd, 0);
    cr_assert_eq(hvc_vm_when_present(t.vm, 0x1000, 64, fd), 1);
    uint64_t n;
    cr_assert_eq(read(fd, &n, sizeof(n)), -1, "written outside post-copy");
    HVT_ERR(hvc_vm_when_present(NULL, 0x1000, 64, fd), -EINVAL);
    HVT_ERR(hvc_vm_when_present(t.vm, 0x1000, 64, -1), -EINVAL);
    HVT_ERR(hvc_vm_when_present(t.vm, 0x1000, 0, fd), -EINVAL);
    HVT_OK(hvc_vm_when_present_cancel(t.vm, fd));
    HVT_ERR(hvc_vm_when_present_cancel(t.vm, -3), -EINVAL);
    HVT_ERR(hvc_vm_when_present_cancel(NULL, fd), -EINVAL);
    close(fd);
    hvt_close(&t);
}
