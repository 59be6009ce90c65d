/* The 16550A UART (hvcore/platform.h), driven by real guests: a polling
 * driver, register semantics, receiving, input from a descriptor without
 * loss, interrupts through the PIC, and the error paths. */
#include "hvtest.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define HELLO "Hello from the 16550A!\r\n"

struct capture {
    pthread_mutex_t lock;
    char buf[4096];
    size_t len;
    int calls;
};

static void capture_init(struct capture *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
}

static void capture_fn(void *opaque, const void *data, size_t length)
{
    struct capture *c = opaque;
    pthread_mutex_lock(&c->lock);
    cr_assert_leq(c->len + length, sizeof(c->buf));
    memcpy(c->buf + c->len, data, length);
    c->len += length;
    c->calls++;
    pthread_mutex_unlock(&c->lock);
}

static void assert_captured(struct capture *c, const void *want, size_t len)
{
    pthread_mutex_lock(&c->lock);
    cr_assert_eq(c->len, len, "captured %zu bytes, want %zu", c->len, len);
    cr_assert_arr_eq(c->buf, want, len);
    pthread_mutex_unlock(&c->lock);
}

static hvc_serial_options com1(struct capture *c)
{
    hvc_serial_options o = HVC_SERIAL_OPTIONS_INIT;
    if (c) {
        o.output_fn = capture_fn;
        o.output_opaque = c;
    }
    return o;
}

/* Runs to an unclaimed OUT to PORT_UNCLAIMED_OUT and returns its byte:
 * the stage a guest stopped at for the host to act. */
static int run_to_stage(hvc_vcpu *v)
{
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(v, &e));
    cr_assert_eq(e->reason, HVC_EXIT_PIO, "exit %u", e->reason);
    cr_assert_eq(e->u.io.port, PORT_UNCLAIMED_OUT, "port 0x%x", e->u.io.port);
    return *(uint8_t *)e->u.io.data;
}

struct runner {
    hvc_vcpu *vcpu;
    int status;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    const hvc_exit *e;
    r->status = -1;
    if (hvc_vcpu_run(r->vcpu, &e) == 0 && e->reason == HVC_EXIT_PIO &&
        e->u.io.port == PORT_DONE)
        r->status = *(uint8_t *)e->u.io.data;
    return NULL;
}

/* Waits up to 5 s for a run_thread to end; a guest stuck waiting for a
 * byte or an interrupt is kicked out and the test fails with @p what. */
static int join_within(pthread_t th, struct runner *r, const char *what)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    if (pthread_timedjoin_np(th, NULL, &deadline) != 0) {
        hvc_vcpu_kick(r->vcpu);
        pthread_join(th, NULL);
        cr_assert_fail("%s (the guest is stuck at rip 0x%llx)", what,
                       (unsigned long long)hvt_reg(r->vcpu, HVC_X86_RIP));
    }
    return r->status;
}

static void restart(hvc_vcpu *v)
{
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = HVC_X86_MODE_LONG64;
    o.entry = GUEST_LOAD;
    o.stack = GUEST_STACK;
    o.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(v, &o));
}

static void poll_guest(uint32_t vm_flags)
{
    hvt t;
    hvt_open(&t, vm_flags);
    hvt_load(t.vm, "serial_poll");
    struct capture c;
    capture_init(&c);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    hvc_serial_options o = com1(&c);
    o.output_fd = p[1];
    hvc_device *dev;
    HVT_OK(hvc_serial_create(t.vm, &o, &dev));
    cr_assert_str_eq(hvc_device_name(dev), "serial0");
    cr_assert_str_eq(hvc_device_type(dev), "16550a");
    hvc_device *list[4];
    size_t n;
    HVT_OK(hvc_vm_list_devices(t.vm, list, 4, &n));
    cr_assert_eq(n, 1);
    cr_assert_eq(list[0], dev);

    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x50);
    const size_t len = strlen(HELLO);
    assert_captured(&c, HELLO, len);
    /* one callback per THR write: the guest waited for THRE each time */
    cr_assert_eq(c.calls, (int)len);
    char got[64] = {0};
    cr_assert_eq(read(p[0], got, sizeof(got)), (ssize_t)len);
    cr_assert_str_eq(got, HELLO);
    hvt_close(&t);
    close(p[0]);
    close(p[1]);
}

Test(serial, polling_guest_prints_to_fd_and_callback)
{
    poll_guest(0);
}

Test(serial, polled_uart_without_irqchip)
{
    poll_guest(HVC_VM_NO_IRQCHIP);
}

/* serial_regs.S, result by result. */
static const uint8_t regs_expected[] = {
    0x60, 0x01, 0xb0, 0x00, 0x00, 0x00, 0x00, /* 0-6 power-on */
    0x5a, 0xa5,                               /* 7-8 scratch */
    0x34, 0x12, 0x83, 0x05, 0x00, 0x0f,       /* 9-14 DLAB, IER */
    0xc1, 0x01, 0xc1,                         /* 15-17 FCR -> IIR */
    0xc2, 0xc1, 0xc2, 0xc2, 0xc1,             /* 18-22 THRE */
    0x0b, 0x00, 0xfb, 0xf0, 0x1f, 0x96,       /* 23-28 loop MSR */
    0x61, 'Q',  0x60, 'x',  'y',  'z',        /* 29-34 loop data */
    0xc1, 0xc0, 0xb2, 0xc1, 0x1f, 0xb4, 0x60, /* 35-41 modem status */
    0x06, 0x63, 0x04, 'a',  0x01,             /* 42-46 line status */
    0x03, 0x0b,                               /* 47-48 LCR+MCR word */
};

static void check_regs(hvc_vm *vm)
{
    uint8_t got[sizeof(regs_expected)];
    HVT_OK(hvc_vm_read(vm, DATA_OUT, got, sizeof(got)));
    for (size_t i = 0; i < sizeof(got); i++)
        cr_assert_eq(got[i], regs_expected[i],
                     "result %zu: 0x%02x, expected 0x%02x", i, got[i],
                     regs_expected[i]);
}

static void regs_guest(uint32_t vm_flags)
{
    hvt t;
    hvt_open(&t, vm_flags);
    hvt_load(t.vm, "serial_regs");
    struct capture c;
    capture_init(&c);
    hvc_serial_options o = com1(&c);
    HVT_OK(hvc_serial_create(t.vm, &o, NULL));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x52);
    check_regs(t.vm);
    /* only the non-loopback THR write reached the output */
    assert_captured(&c, "T", 1);

    /* the guest left LCR, IER, MCR, FCR and scratch set and an interrupt
     * pending; after a reset it sees power-on values again */
    HVT_OK(hvc_vm_reset_devices(t.vm));
    uint8_t zero[sizeof(regs_expected)] = {0};
    HVT_OK(hvc_vm_write(t.vm, DATA_OUT, zero, sizeof(zero)));
    restart(v);
    cr_assert_eq(hvt_run_done(v), 0x52);
    check_regs(t.vm);
    assert_captured(&c, "TT", 2);
    hvt_close(&t);
}

Test(serial, registers_and_reset)
{
    regs_guest(0);
}

Test(serial, registers_without_irqchip)
{
    regs_guest(HVC_VM_NO_IRQCHIP);
}

Test(serial, receive_and_overrun)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "serial_rx");
    hvc_device *dev;
    hvc_serial_options o = com1(NULL);
    HVT_OK(hvc_serial_create(t.vm, &o, &dev));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);

    cr_assert_eq(run_to_stage(v), 1);
    cr_assert_eq(hvc_serial_receive(dev, "abc", 3), 3);
    cr_assert_eq(run_to_stage(v), 2);
    const char *twenty = "ABCDEFGHIJKLMNOPQRST";
    cr_assert_eq(hvc_serial_receive(dev, twenty, 20), 16);
    cr_assert_eq(hvc_serial_receive(dev, "U", 1), 0); /* still full */
    cr_assert_eq(run_to_stage(v), 3);
    cr_assert_eq(hvc_serial_receive(dev, "xyz", 3), 1); /* 16450 mode */
    cr_assert_eq(run_to_stage(v), 4);
    cr_assert_eq(hvc_serial_receive(dev, "L", 1), 0); /* loopback */
    cr_assert_eq(hvc_serial_receive(dev, NULL, 0), 0);
    cr_assert_eq(hvt_run_done(v), 0x53);

    uint8_t got[35];
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, got, sizeof(got)));
    const uint8_t head[] = {0xcc, 0x61, 'a',  0x61, 'b',  0x61, 'c',
                            0x60, 0xc1, 0xc6, 0x63, 0x61, 0xc4};
    for (size_t i = 0; i < sizeof(head); i++)
        cr_assert_eq(got[i], head[i], "result %zu: 0x%02x, expected 0x%02x", i,
                     got[i], head[i]);
    cr_assert_arr_eq(got + 13, twenty, 16);
    const uint8_t tail[] = {0x60, 0x06, 0x63, 'x', 0x60, 0x60};
    for (size_t i = 0; i < sizeof(tail); i++)
        cr_assert_eq(got[29 + i], tail[i],
                     "result %zu: 0x%02x, expected 0x%02x", 29 + i, got[29 + i],
                     tail[i]);
    hvt_close(&t);
}

/* The host sends more than the receiver holds through a pipe, closes it,
 * and the guest echoes every byte back in order. */
static void echo_from_fd(uint8_t fcr, uint64_t count)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "serial_echo");
    uint64_t in[2] = {count, fcr};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, in, sizeof(in)));
    struct capture c;
    capture_init(&c);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    hvc_serial_options o = com1(&c);
    o.input_fd = p[0];
    HVT_OK(hvc_serial_create(t.vm, &o, NULL));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(run_to_stage(v), fcr);

    uint8_t msg[256];
    cr_assert_leq(count, sizeof(msg));
    for (uint64_t i = 0; i < count; i++)
        msg[i] = (uint8_t)(0x20 + i * 7 % 95);
    cr_assert_eq(write(p[1], msg, count), (ssize_t)count);
    close(p[1]); /* end of file after the data */
    struct runner r = {v, -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_thread, &r), 0);
    int status = join_within(th, &r, "input was lost");
    cr_assert_eq(status, 0x54, "guest status 0x%x", status);
    assert_captured(&c, msg, count);
    hvt_close(&t);
    close(p[0]);
}

Test(serial, input_fd_with_fifo_loses_nothing)
{
    echo_from_fd(0x07, 40);
}

Test(serial, input_fd_in_16450_mode_loses_nothing)
{
    echo_from_fd(0x00, 40);
}

Test(serial, input_fd_long_stream_at_trigger_14)
{
    echo_from_fd(0xc7, 256);
}

static uint64_t guest_qword(hvc_vm *vm, uint64_t gpa)
{
    uint64_t v;
    HVT_OK(hvc_vm_read(vm, gpa, &v, sizeof(v)));
    return v;
}

/* serial_irq.S: THRE and received-data interrupts through the PIC, the
 * second one waking the vCPU from HLT in the kernel. */
Test(serial, interrupts_through_the_pic)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "serial_irq");
    struct capture c;
    capture_init(&c);
    hvc_device *dev;
    hvc_serial_options o = com1(&c);
    HVT_OK(hvc_serial_create(t.vm, &o, &dev));
    struct runner r = {hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0), -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_thread, &r), 0);

    /* PHASE = 1: the THRE part is done and the guest halts for input */
    for (int i = 0; i < 5000 && guest_qword(t.vm, DATA_OUT + 0x20) != 1; i++)
        usleep(1000);
    if (guest_qword(t.vm, DATA_OUT + 0x20) != 1) {
        hvc_vcpu_kick(r.vcpu);
        pthread_join(th, NULL);
        cr_assert_fail("no THRE interrupts; the guest is at rip 0x%llx",
                       (unsigned long long)hvt_reg(r.vcpu, HVC_X86_RIP));
    }
    usleep(20000); /* long enough to be asleep in HLT */
    cr_assert_eq(hvc_serial_receive(dev, "hi", 2), 2);

    int status = join_within(
        th, &r, "the received-data interrupt did not wake the guest");
    cr_assert_eq(status, 0x55, "guest status 0x%x", status);
    uint8_t log[8] = {0};
    uint64_t nlog = guest_qword(t.vm, DATA_OUT + 0x08);
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT + 0x40, log, sizeof(log)));
    /* THRE three times (two bytes sent), received data, THRE once more
     * after ETBEI was switched on again */
    const uint8_t want[] = {0x02, 0x02, 0x02, 0x04, 0x02};
    cr_assert_eq(nlog, sizeof(want), "%llu interrupt IDs logged",
                 (unsigned long long)nlog);
    cr_assert_arr_eq(log, want, sizeof(want));
    char rx[2];
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT + 0x80, rx, 2));
    cr_assert_arr_eq(rx, "hi", 2);
    assert_captured(&c, "12", 2);
    hvt_close(&t);
}

Test(serial, bad_options)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_serial_options o = com1(NULL);
    o.size = 4;
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "size"), "%s", hvc_last_error());
    o = com1(NULL);
    o.size = sizeof(o) + 8;
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EINVAL);
    o = com1(NULL);
    o.port = 0xfffc;
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "0xfffc"), "%s", hvc_last_error());
    o.port = 0x10000;
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EINVAL);
    o = com1(NULL);
    o.irq = 99;
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "99"), "%s", hvc_last_error());
    o = com1(NULL);
    o.name = "";
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EINVAL);
    o = com1(NULL);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[1]);
    o.output_fd = p[1]; /* closed */
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "output_fd"), "%s", hvc_last_error());
    close(p[0]);
    /* epoll refuses a regular file as input */
    o = com1(NULL);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    o.input_fd = fileno(f);
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "input_fd"), "%s", hvc_last_error());
    fclose(f);
    HVT_ERR(hvc_serial_create(NULL, &o, NULL), -EINVAL);
    /* none of these left a device behind */
    size_t n;
    HVT_OK(hvc_vm_list_devices(t.vm, NULL, 0, &n));
    cr_assert_eq(n, 0);
    hvt_close(&t);
}

static int fake_read(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                     uint64_t offset, void *data, uint32_t size)
{
    (void)opaque, (void)vcpu, (void)range, (void)offset;
    memset(data, 0, size);
    return 0;
}

Test(serial, receive_rejects_other_devices)
{
    hvt t;
    hvt_open(&t, 0);
    /* a caller's device that merely calls itself a 16550A */
    static const hvc_device_ops fake = {
        .version = HVC_DEVICE_OPS_VERSION,
        .type = "16550a",
        .read = fake_read,
    };
    hvc_device_range r = {HVC_IO_PIO, 0, 0x2f8, 8};
    hvc_device_options d = HVC_DEVICE_OPTIONS_INIT;
    d.nr_ranges = 1;
    d.ranges = &r;
    hvc_device *other;
    int state = 0;
    HVT_OK(hvc_vm_add_device(t.vm, &fake, &state, &d, &other));
    HVT_ERR(hvc_serial_receive(other, "x", 1), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "not a 16550A"), "%s", hvc_last_error());
    HVT_ERR(hvc_serial_receive(NULL, "x", 1), -EINVAL);
    hvc_device *uart;
    HVT_OK(hvc_serial_create(t.vm, NULL, &uart));
    HVT_ERR(hvc_serial_receive(uart, NULL, 1), -EINVAL);
    cr_assert_eq(hvc_serial_receive(uart, "x", 1), 1);
    hvt_close(&t);
}

Test(serial, ports_and_names)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_device *a, *b, *c;
    HVT_OK(hvc_serial_create(t.vm, NULL, &a)); /* COM1 */
    hvc_serial_options o = com1(NULL);
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EEXIST);
    o.port = 0x3fc; /* overlaps COM1's upper half */
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EEXIST);
    o.port = 0x2f8;
    o.irq = 3;
    HVT_OK(hvc_serial_create(t.vm, &o, &b));
    cr_assert_str_eq(hvc_device_name(a), "serial0");
    cr_assert_str_eq(hvc_device_name(b), "serial1");
    o.port = 0x3e8;
    o.name = "ttyS2";
    HVT_OK(hvc_serial_create(t.vm, &o, &c));
    cr_assert_str_eq(hvc_device_name(c), "ttyS2");
    o.port = 0x2e8;
    HVT_ERR(hvc_serial_create(t.vm, &o, NULL), -EEXIST); /* name taken */
    o.name = NULL;
    o.port = 0xfff8; /* the last 8 ports are fine */
    HVT_OK(hvc_serial_create(t.vm, &o, NULL));
    hvc_device *found;
    HVT_OK(hvc_vm_find_device(t.vm, "serial2", &found));
    /* a removed UART frees its ports and name */
    HVT_OK(hvc_vm_remove_device(t.vm, a));
    o = com1(NULL);
    HVT_OK(hvc_serial_create(t.vm, &o, &a));
    cr_assert_str_eq(hvc_device_name(a), "serial0");
    hvt_close(&t);
}

/* A reader that never drains a non-blocking pipe costs the guest one short
 * wait, not a hang; the bytes are dropped. */
Test(serial, full_nonblocking_output_drops_bytes)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "serial_poll");
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    static char fill[1 << 16];
    memset(fill, '.', sizeof(fill));
    size_t filled = 0;
    ssize_t w;
    while ((w = write(p[1], fill, sizeof(fill))) > 0)
        filled += (size_t)w;
    cr_assert_eq(errno, EAGAIN);
    struct capture c;
    capture_init(&c);
    hvc_serial_options o = com1(&c);
    o.output_fd = p[1];
    HVT_OK(hvc_serial_create(t.vm, &o, NULL));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(hvt_run_done(v), 0x50);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    cr_assert_lt(ms, 1000.0, "the guest took %.0f ms", ms);
    /* the callback still saw everything; the pipe holds only the filler */
    assert_captured(&c, HELLO, strlen(HELLO));
    size_t drained = 0;
    while ((w = read(p[0], fill, sizeof(fill))) > 0)
        drained += (size_t)w;
    cr_assert_eq(drained, filled);
    hvt_close(&t);
    close(p[0]);
    close(p[1]);
}

/* Output to a pipe whose reader is gone must not kill the process with
 * SIGPIPE (Criterion would report the crash). */
Test(serial, output_to_a_closed_pipe_is_not_fatal)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "serial_poll");
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    struct capture c;
    capture_init(&c);
    hvc_serial_options o = com1(&c);
    o.output_fd = p[1];
    HVT_OK(hvc_serial_create(t.vm, &o, NULL));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x50);
    assert_captured(&c, HELLO, strlen(HELLO));
    hvt_close(&t);
    close(p[1]);
}

/* Removing a UART stops its input watch: later input reaches nobody. */
Test(serial, remove_with_input_watched)
{
    hvt t;
    hvt_open(&t, 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    hvc_serial_options o = com1(NULL);
    o.input_fd = p[0];
    hvc_device *dev;
    HVT_OK(hvc_serial_create(t.vm, &o, &dev));
    cr_assert_eq(write(p[1], "0123456789abcdefXYZ", 19), 19);
    usleep(10000); /* let the event thread fill the receiver */
    HVT_OK(hvc_vm_remove_device(t.vm, dev));
    /* the descriptor is the caller's again: unwatched, still open */
    cr_assert_eq(write(p[1], "more", 4), 4);
    usleep(10000);
    char buf[64];
    ssize_t n = read(p[0], buf, sizeof(buf));
    cr_assert_geq(n, 4, "read %zd", n);
    cr_assert_arr_eq(buf + n - 4, "more", 4);
    /* a new UART on the same descriptor takes over */
    HVT_OK(hvc_serial_create(t.vm, &o, &dev));
    hvt_close(&t);
    close(p[0]);
    close(p[1]);
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* With the receiver full, input stays in the descriptor (nothing read
 * that does not fit) and the event thread does not spin on it. */
Test(serial, full_receiver_leaves_input_in_the_fd_without_spinning)
{
    hvt t;
    hvt_open(&t, 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    hvc_serial_options o = com1(NULL);
    o.input_fd = p[0];
    HVT_OK(hvc_serial_create(t.vm, &o, NULL));
    char msg[100];
    memset(msg, 'z', sizeof(msg));
    cr_assert_eq(write(p[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
    usleep(20000);
    double before = cpu_ms();
    usleep(200000);
    double used = cpu_ms() - before;
    cr_assert_lt(used, 50.0, "%.1f ms of CPU while idle", used);
    /* the power-on receiver (FIFOs off) holds one byte */
    int left = 0;
    cr_assert_eq(ioctl(p[0], FIONREAD, &left), 0);
    cr_assert_eq(left, (int)sizeof(msg) - 1);
    hvt_close(&t);
    close(p[0]);
    close(p[1]);
}

struct reflect {
    hvc_device *dev;
    int accepted[64];
    int calls;
};

/* Hands every transmitted byte straight back to the receiver: output_fn
 * runs without the UART's lock, so this must not deadlock. */
static void reflect_fn(void *opaque, const void *data, size_t length)
{
    struct reflect *r = opaque;
    if (r->calls < 64)
        r->accepted[r->calls++] = hvc_serial_receive(r->dev, data, length);
}

Test(serial, output_fn_may_call_receive)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "serial_poll");
    struct reflect r = {0};
    hvc_serial_options o = HVC_SERIAL_OPTIONS_INIT;
    o.output_fn = reflect_fn;
    o.output_opaque = &r;
    HVT_OK(hvc_serial_create(t.vm, &o, &r.dev));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x50);
    /* the guest turned the 16-byte FIFO on before printing */
    cr_assert_eq(r.calls, (int)strlen(HELLO));
    for (int i = 0; i < r.calls; i++)
        cr_assert_eq(r.accepted[i], i < 16 ? 1 : 0, "byte %d: %d", i,
                     r.accepted[i]);
    hvt_close(&t);
}

/* While the VM is paused the UART takes nothing from its input: what a
 * snapshot, migration or hand-over saves is the receiver as it was, and
 * the rest waits in the descriptor for the side that runs the guest next
 * (an abandoned side must not have swallowed it). On resume it reads
 * again, and it does not spin while paused. */
Test(serial, paused_vm_leaves_input_in_the_fd)
{
    hvt t;
    hvt_open(&t, 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    hvc_serial_options o = com1(NULL);
    o.input_fd = p[0];
    HVT_OK(hvc_serial_create(t.vm, &o, NULL));
    HVT_OK(hvc_vm_pause(t.vm));
    cr_assert_eq(write(p[1], "held", 4), 4);
    usleep(20000);
    double before = cpu_ms();
    usleep(100000);
    double used = cpu_ms() - before;
    cr_assert_lt(used, 30.0, "%.1f ms of CPU while paused", used);
    int left = 0;
    cr_assert_eq(ioctl(p[0], FIONREAD, &left), 0);
    cr_assert_eq(left, 4, "the paused UART read %d bytes", 4 - left);
    /* a pause nested in the first changes nothing */
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    usleep(20000);
    cr_assert_eq(ioctl(p[0], FIONREAD, &left), 0);
    cr_assert_eq(left, 4);
    HVT_OK(hvc_vm_resume(t.vm));
    /* the power-on receiver (FIFOs off) takes one byte, and nothing else
     * is lost: the rest still waits */
    for (int i = 0; i < 200 && left != 3; i++) {
        usleep(5000);
        cr_assert_eq(ioctl(p[0], FIONREAD, &left), 0);
    }
    cr_assert_eq(left, 3, "after the resume %d bytes wait", left);
    hvt_close(&t);
    close(p[0]);
    close(p[1]);
}
