/* The virtio guest suite, continued (linked into test_virtio_guest):
 * virtio-rng and virtio-console driven by tests/virtio/vrng.c and vcons.c,
 * and the command line and constructor errors of hvcore/virtio.h. */
#include "vthost.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define F_VERSION_1 (1ull << 32)

static void rng_run(uint32_t flags)
{
    vt v;
    vt_open(&v, "vrng");
    hvc_virtio_mmio m = {VT_RNG_BASE, VT_RNG_IRQ, 0};
    hvc_device *dev;
    HVT_OK(hvc_virtio_rng_create(v.t.vm, &m, NULL, &dev));
    cr_assert_str_eq(hvc_device_name(dev), "virtio-rng0");
    vt_cmd_init(&v, VT_RNG_BASE, VT_RNG_IRQ, flags);
    v.cmd.nops = 4;
    vt_run_ok(&v);
    cr_assert_eq(v.out.device_id, 4);
    cr_assert(v.out.drv_features & F_VERSION_1);
    cr_assert_eq(v.out.status, 0x0f, "device status 0x%x", v.out.status);
    uint8_t buf[4][VT_RNG_LEN];
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert(v.out.res[i].done);
        cr_assert_eq(v.out.res[i].used_len, VT_RNG_LEN,
                     "request %u (%s): used length %u", i,
                     i % 2 ? "two descriptors" : "one descriptor",
                     v.out.res[i].used_len);
        HVT_OK(hvc_vm_read(v.t.vm, VT_BUF + i * VT_STRIDE, buf[i], VT_RNG_LEN));
        /* both halves filled, so a chain is not served by its head only */
        static const uint8_t zero[VT_RNG_LEN / 2];
        cr_assert(memcmp(buf[i], zero, sizeof(zero)) != 0 &&
                      memcmp(buf[i] + VT_RNG_LEN / 2, zero, sizeof(zero)) != 0,
                  "request %u left zeroes", i);
        for (uint32_t k = 0; k < i; k++)
            cr_assert(memcmp(buf[i], buf[k], VT_RNG_LEN) != 0,
                      "requests %u and %u got the same bytes", k, i);
    }
    cr_assert(memcmp(buf[0], buf[0] + VT_RNG_LEN / 2, VT_RNG_LEN / 2) != 0);
    if (flags & VT_IRQ) {
        cr_assert_geq(v.out.irq_count, 1);
        cr_assert(v.out.irq_status & 1, "InterruptStatus 0x%x",
                  v.out.irq_status);
        cr_assert_eq(v.out.isr_after, 0);
    }
    vt_close(&v);
}

Test(virtio_guest, rng_fills_buffers_polling)
{
    rng_run(0);
}

Test(virtio_guest, rng_fills_buffers_on_interrupt)
{
    rng_run(VT_IRQ);
}

struct capture {
    pthread_mutex_t lock;
    char buf[1024];
    size_t len;
};

static void capture_fn(void *opaque, const void *data, size_t length)
{
    struct capture *c = opaque;
    pthread_mutex_lock(&c->lock);
    if (c->len + length <= sizeof(c->buf)) {
        memcpy(c->buf + c->len, data, length);
        c->len += length;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Output arrives on the event thread; give it a moment (it should already
 * be there: the guest saw its buffers used). */
static size_t captured(struct capture *c, size_t want)
{
    size_t len = 0;
    for (int t = 0; t < 200; t++) {
        pthread_mutex_lock(&c->lock);
        len = c->len;
        pthread_mutex_unlock(&c->lock);
        if (len >= want)
            break;
        usleep(10000);
    }
    return len;
}

static size_t read_fd(int fd, char *buf, size_t cap, size_t want)
{
    size_t n = 0;
    while (n < want) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0)
            break;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    return n;
}

/* The guest transmits VT_CONS_HELLO (two chains); the host finds it on
 * output_fn and output_fd, then feeds @input on input_fd, more than one
 * receive buffer holds, which the guest must receive whole and in order.
 * @early: whether the guest posted its receive buffers before the input
 * was written (else it posts them only after, and the device must have
 * kept the input meanwhile). */
static void console_run(int early, int input_before_start)
{
    static const char input[] =
        "ping from the host: the quick brown fox jumps over the lazy dog, "
        "0123456789 abcdefghijklmnopqrstuvwxyz!\n";
    const size_t hello_len = strlen(VT_CONS_HELLO), in_len = strlen(input);
    vt v;
    vt_open(&v, "vcons");
    struct capture c = {.len = 0};
    pthread_mutex_init(&c.lock, NULL);
    int out_p[2], in_p[2];
    cr_assert_eq(pipe(out_p), 0);
    cr_assert_eq(pipe(in_p), 0);
    hvc_virtio_console_options o = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
    o.mmio.base = VT_CONS_BASE;
    o.mmio.irq = VT_CONS_IRQ;
    o.output_fd = out_p[1];
    o.input_fd = in_p[0];
    o.output_fn = capture_fn;
    o.output_opaque = &c;
    hvc_device *dev;
    HVT_OK(hvc_virtio_console_create(v.t.vm, &o, &dev));
    cr_assert_str_eq(hvc_device_name(dev), "virtio-console0");
    if (input_before_start)
        cr_assert_eq(write(in_p[1], input, in_len), (ssize_t)in_len);

    vt_cmd_init(&v, VT_CONS_BASE, VT_CONS_IRQ, early ? VT_RX_EARLY : 0);
    v.cmd.nops = (uint32_t)in_len;
    int r = vt_run(&v, 20);
    cr_assert_eq(r, 0x101, "guest stopped with 0x%x (op %u)", r, v.out.detail);
    cr_assert_eq(v.out.device_id, 3);
    for (int i = 0; i < 2; i++)
        cr_assert(v.out.res[i].done, "transmit chain %d not used", i);
    size_t got = captured(&c, hello_len);
    cr_assert_eq(got, hello_len, "output_fn got %zu bytes: '%.*s'", got,
                 (int)got, c.buf);
    cr_assert_arr_eq(c.buf, VT_CONS_HELLO, hello_len);
    char fdbuf[256];
    size_t n = read_fd(out_p[0], fdbuf, sizeof(fdbuf), hello_len);
    cr_assert_eq(n, hello_len, "output_fd got %zu bytes", n);
    cr_assert_arr_eq(fdbuf, VT_CONS_HELLO, hello_len);

    if (!input_before_start)
        cr_assert_eq(write(in_p[1], input, in_len), (ssize_t)in_len);
    r = vt_run(&v, 20);
    cr_assert_eq(r, VT_OK, "guest error %d: received %u bytes in %u buffers", r,
                 v.out.rx_len, v.out.rx_count);
    cr_assert_eq(v.out.rx_len, in_len);
    cr_assert_geq(v.out.rx_count, (in_len + VT_CONS_RXBUF - 1) / VT_CONS_RXBUF);
    char rx[VT_CONS_RX_MAX];
    HVT_OK(hvc_vm_read(v.t.vm, VT_DATA_OUT + VT_CONS_RX, rx, in_len));
    cr_assert_arr_eq(rx, input, in_len, "received '%.*s'", (int)in_len, rx);
    cr_assert_eq(v.out.status, 0x0f, "device status 0x%x", v.out.status);
    /* nothing more came out */
    cr_assert_eq(captured(&c, 0), hello_len);
    vt_close(&v);
    for (int i = 0; i < 2; i++) {
        close(out_p[i]);
        close(in_p[i]);
    }
}

Test(virtio_guest, console_transmit_and_receive)
{
    console_run(1, 0);
}

/* Input that arrives before the driver has posted receive buffers (or is
 * even up) is held, not dropped, as the UART does (platform.h). */
Test(virtio_guest, console_input_waits_for_buffers)
{
    console_run(0, 1);
}

Test(virtio_guest, cmdline_names_every_device)
{
    hvt t;
    hvt_open(&t, 0);
    size_t len = 99;
    char buf[256];
    HVT_OK(hvc_virtio_cmdline(t.vm, buf, sizeof(buf), &len));
    cr_assert_eq(len, 0);
    cr_assert_str_eq(buf, "");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), 4096, 0);
    hvc_virtio_blk_options b = HVC_VIRTIO_BLK_OPTIONS_INIT;
    b.mmio = (hvc_virtio_mmio){VT_BLK_BASE, VT_BLK_IRQ, 0};
    b.fd = fd;
    HVT_OK(hvc_virtio_blk_create(t.vm, &b, NULL));
    hvc_virtio_mmio m = {VT_RNG_BASE, VT_RNG_IRQ, 0};
    HVT_OK(hvc_virtio_rng_create(t.vm, &m, NULL, NULL));
    hvc_virtio_console_options c = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
    c.mmio = (hvc_virtio_mmio){VT_CONS_BASE, VT_CONS_IRQ, 0};
    HVT_OK(hvc_virtio_console_create(t.vm, &c, NULL));
    const char *want = "virtio_mmio.device=512@0xd0000000:5 "
                       "virtio_mmio.device=512@0xd0000200:6 "
                       "virtio_mmio.device=512@0xd0000400:7";
    len = 0;
    int r = hvc_virtio_cmdline(t.vm, NULL, 0, &len);
    cr_assert(r == 0 || r == -ENOSPC, "sizing call: %d", r);
    cr_assert_eq(len, strlen(want), "length %zu", len);
    HVT_ERR(hvc_virtio_cmdline(t.vm, buf, strlen(want), &len), -ENOSPC);
    HVT_OK(hvc_virtio_cmdline(t.vm, buf, strlen(want) + 1, &len));
    cr_assert_str_eq(buf, want);
    hvc_device *d;
    HVT_OK(hvc_vm_find_device(t.vm, "virtio-blk0", &d));
    HVT_OK(hvc_vm_find_device(t.vm, "virtio-rng0", &d));
    HVT_OK(hvc_vm_find_device(t.vm, "virtio-console0", &d));
    hvt_close(&t);
    close(fd);
    unlink(path);
}

Test(virtio_guest, constructors_refuse_bad_options)
{
    hvt t;
    hvt_open(&t, 0);
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), 4096, 0);
    hvc_virtio_blk_options b = HVC_VIRTIO_BLK_OPTIONS_INIT;
    b.fd = fd;
    b.mmio = (hvc_virtio_mmio){VT_BLK_BASE + 0x100, 5, 0}; /* unaligned */
    HVT_ERR(hvc_virtio_blk_create(t.vm, &b, NULL), -EINVAL);
    b.mmio = (hvc_virtio_mmio){0x100000, 5, 0}; /* in RAM */
    HVT_ERR(hvc_virtio_blk_create(t.vm, &b, NULL), -EEXIST);
    b.mmio = (hvc_virtio_mmio){VT_BLK_BASE, 24, 0}; /* no such GSI */
    HVT_ERR(hvc_virtio_blk_create(t.vm, &b, NULL), -EINVAL);
    b.mmio.irq = 5;
    b.size = 4;
    HVT_ERR(hvc_virtio_blk_create(t.vm, &b, NULL), -EINVAL);
    b.size = sizeof(b);
    b.fd = -1; /* neither path nor fd */
    HVT_ERR(hvc_virtio_blk_create(t.vm, &b, NULL), -EINVAL);
    b.path = "/nonexistent/hvcore-disk.img";
    HVT_ERR(hvc_virtio_blk_create(t.vm, &b, NULL), -ENOENT);
    cr_assert(strstr(hvc_last_error(), "/nonexistent/hvcore-disk.img"),
              "message without the path: %s", hvc_last_error());
    b.path = NULL;
    b.fd = fd;
    HVT_OK(hvc_virtio_blk_create(t.vm, &b, NULL));
    int r = hvc_virtio_blk_create(t.vm, &b, NULL); /* the same window */
    cr_assert_eq(r, -EEXIST, "overlapping window: %d", r);
    hvc_virtio_mmio m = {VT_BLK_BASE, 6, 0};
    r = hvc_virtio_rng_create(t.vm, &m, NULL, NULL);
    cr_assert_eq(r, -EEXIST, "overlapping window: %d", r);
    HVT_ERR(hvc_virtio_rng_create(t.vm, NULL, NULL, NULL), -EINVAL);
    HVT_ERR(hvc_virtio_rng_create(NULL, &m, NULL, NULL), -EINVAL);
    hvc_virtio_console_options c = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
    c.mmio = (hvc_virtio_mmio){VT_CONS_BASE, 7, 0};
    c.size = 0;
    HVT_ERR(hvc_virtio_console_create(t.vm, &c, NULL), -EINVAL);
    HVT_ERR(hvc_virtio_console_create(t.vm, NULL, NULL), -EINVAL);
    HVT_ERR(hvc_virtio_cmdline(NULL, NULL, 0, NULL), -EINVAL);
    hvt_close(&t);
    close(fd);
    unlink(path);
}
