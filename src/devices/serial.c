/*
 * The 16550A UART of hvcore/platform.h: the device around the register
 * model of serial_regs.c, with its output, its input and its creation.
 *
 * - input_fd never loses a byte: the event thread reads only what fits in
 *   the receiver and stops watching the descriptor when the receiver is
 *   full (the rest waits in the kernel's buffer). The vCPU that drains it
 *   to half watches the descriptor again, so a fast sender costs one watch
 *   per ~8 bytes and no thread ever spins. End of file or a read error
 *   ends input for good (a pty master reads EIO while nobody has the slave
 *   open: keep the slave open to attach later). While loopback is on the
 *   line input is disconnected: the descriptor is left alone and
 *   hvc_serial_receive() accepts nothing.
 *
 * - output_fd: short writes and EINTR are retried. A blocking descriptor
 *   blocks the vCPU until its reader makes room (the caller's choice). A
 *   full non-blocking one gets one short wait (OUTPUT_WAIT_MS), then bytes
 *   are dropped (counted in out_dropped) until a write succeeds again. A
 *   pipe or socket whose reader is gone raises no SIGPIPE; that and any
 *   other write error end output to the descriptor. output_fn gets every
 *   byte regardless.
 *
 * Locking: one mutex per UART covers the registers and the input state;
 * vCPU threads, the event thread and hvc_serial_receive() callers take it.
 * Output and (re)watching input happen after it is released:
 * hvc_vm_watch_fd() takes the event loop's lock, which is held while
 * on_input() waits for ours, and output_fn may call hvc_serial_receive().
 * A second mutex serialises output, so output_fn is never called
 * concurrently and the bytes of several vCPUs do not interleave.
 */
#include "serial.h"

#include "../core/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUTPUT_WAIT_MS 20

enum out_kind { OUT_PLAIN, OUT_PIPE, OUT_SOCKET };

typedef struct uart {
    /* Fixed at creation. */
    hvc_vm *vm;
    int in_fd;
    int out_fd;
    enum out_kind out_kind;
    hvc_serial_output_fn out_fn;
    void *out_opaque;

    pthread_mutex_t lock; /* guards regs, watching, in_done, held */
    struct hvi_uart_regs regs;
    bool watching; /* in_fd is registered with the event thread */
    bool in_done;  /* in_fd reached EOF or failed: never watch again */
    bool held;     /* the VM is paused: input stays in in_fd */
    int resume_fd; /* notifier: watch in_fd again after a pause; or -1 */

    pthread_mutex_t out_lock; /* serialises output; guards these: */
    bool out_stalled;         /* the last write to out_fd was dropped */
    bool out_broken;          /* out_fd failed for good */
    uint64_t out_dropped;     /* bytes out_fd never got */
} uart;

/* An array, not a literal: its address identifies our devices, and no
 * other table's string can be merged with it. */
static const char uart_type[] = "16550a";

/* What an access leaves to do once the lock is released. */
struct after {
    uint8_t tx[HVI_UART_PORTS];
    size_t n_tx;
    bool watch;
};

/* Claims the job of watching in_fd again when the receiver can take input
 * and nobody watches it; the caller calls watch_input() after unlocking. */
static bool take_watch(uart *u)
{
    const struct hvi_uart_regs *r = &u->regs;
    if (u->in_fd < 0 || u->watching || u->in_done || u->held ||
        hvi_uart_loopback(r) || r->rx_count > hvi_uart_rx_capacity(r) / 2)
        return false;
    u->watching = true;
    return true;
}

static void on_input(void *opaque, int fd, uint32_t events);

static void watch_input(uart *u)
{
    int r = hvc_vm_watch_fd(u->vm, u->in_fd, HVC_FD_READABLE, on_input, u);
    if (r < 0) {
        /* Left for the next drain of the receiver to try again; nothing
         * is lost meanwhile, the bytes wait in the descriptor. */
        pthread_mutex_lock(&u->lock);
        u->watching = false;
        pthread_mutex_unlock(&u->lock);
    }
}

/* Runs on the event thread, which holds the event loop's lock, so
 * unwatching from here takes no lock of its own. */
static void stop_watching(uart *u, bool for_good)
{
    hvc_vm_unwatch_fd(u->vm, u->in_fd);
    u->watching = false;
    if (for_good)
        u->in_done = true;
}

static void on_input(void *opaque, int fd, uint32_t events)
{
    uart *u = opaque;
    struct hvi_uart_regs *r = &u->regs;
    (void)events;
    pthread_mutex_lock(&u->lock);
    unsigned room = hvi_uart_rx_capacity(r) - r->rx_count;
    if (room == 0 || hvi_uart_loopback(r) || u->held) {
        stop_watching(u, false);
        goto out;
    }
    /* epoll's word may be stale (another reader of a shared terminal):
     * make sure read() cannot block the event thread. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        goto out;
    if (p.revents & POLLNVAL) {
        stop_watching(u, true);
        goto out;
    }
    uint8_t buf[HVI_UART_FIFO];
    ssize_t n = read(fd, buf, room);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        goto out; /* still readable: epoll calls again */
    if (n <= 0) {
        stop_watching(u, true);
        goto out;
    }
    for (ssize_t i = 0; i < n; i++)
        hvi_uart_rx_push(r, buf[i]);
    if (r->rx_count == hvi_uart_rx_capacity(r))
        stop_watching(u, false);
    hvi_uart_update_irq(r);
out:
    pthread_mutex_unlock(&u->lock);
}

static ssize_t out_write(const uart *u, const uint8_t *p, size_t n)
{
    switch (u->out_kind) {
    case OUT_SOCKET: return send(u->out_fd, p, n, MSG_NOSIGNAL);
    case OUT_PIPE: return hvi_os_write_nosigpipe(u->out_fd, p, n);
    default: return write(u->out_fd, p, n);
    }
}

static bool wait_writable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    return poll(&p, 1, OUTPUT_WAIT_MS) > 0 && (p.revents & POLLOUT);
}

/* Caller holds out_lock. */
static void write_output(uart *u, const uint8_t *p, size_t n)
{
    bool waited = false;
    while (n && !u->out_broken) {
        ssize_t w = out_write(u, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            u->out_stalled = false;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* A reader that is merely slow gets one short wait; one that
             * is stuck costs the guest nothing more until it drains. */
            if (u->out_stalled || waited || !wait_writable(u->out_fd)) {
                u->out_stalled = true;
                break;
            }
            waited = true;
        } else {
            u->out_broken = true;
        }
    }
    u->out_dropped += n;
}

static void finish(uart *u, const struct after *a)
{
    if (a->n_tx) {
        pthread_mutex_lock(&u->out_lock);
        if (u->out_fn)
            u->out_fn(u->out_opaque, a->tx, a->n_tx);
        if (u->out_fd >= 0)
            write_output(u, a->tx, a->n_tx);
        pthread_mutex_unlock(&u->out_lock);
    }
    if (a->watch)
        watch_input(u);
}

/* A 2- or 4-byte access reaches consecutive registers, as the ISA bus
 * splits it for an 8-bit device. */
static int uart_read(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                     uint64_t offset, void *data, uint32_t size)
{
    uart *u = opaque;
    uint8_t *p = data;
    struct after a = {.n_tx = 0};
    (void)vcpu, (void)range;
    pthread_mutex_lock(&u->lock);
    for (uint32_t i = 0; i < size; i++)
        p[i] = offset + i < HVI_UART_PORTS
                   ? hvi_uart_read(&u->regs, (unsigned)(offset + i))
                   : 0xff;
    hvi_uart_update_irq(&u->regs);
    a.watch = take_watch(u);
    pthread_mutex_unlock(&u->lock);
    finish(u, &a);
    return 0;
}

static int uart_write(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                      uint64_t offset, const void *data, uint32_t size)
{
    uart *u = opaque;
    const uint8_t *p = data;
    struct after a = {.n_tx = 0};
    (void)vcpu, (void)range;
    pthread_mutex_lock(&u->lock);
    for (uint32_t i = 0; i < size && offset + i < HVI_UART_PORTS; i++)
        if (hvi_uart_write(&u->regs, (unsigned)(offset + i), p[i],
                           &a.tx[a.n_tx]))
            a.n_tx++;
    hvi_uart_update_irq(&u->regs);
    a.watch = take_watch(u);
    pthread_mutex_unlock(&u->lock);
    finish(u, &a);
    return 0;
}

static void uart_reset(void *opaque)
{
    uart *u = opaque;
    struct after a = {.n_tx = 0};
    pthread_mutex_lock(&u->lock);
    hvi_uart_reset(&u->regs);
    hvi_uart_update_irq(&u->regs);
    a.watch = take_watch(u);
    pthread_mutex_unlock(&u->lock);
    finish(u, &a);
}

/* While the VM is paused no byte leaves in_fd: a snapshot, migration or
 * hand-over saves the receiver as it is, and what the guest has not been
 * given yet stays in the descriptor for whichever side runs it next (a
 * side that is abandoned never took it). Called with dev_ops_lock held, so
 * the watch is not touched here (hvc_vm_watch_fd() takes the event loop's
 * lock, which comes first): the event thread unwatches on its next
 * callback, and on resume the notifier has it watch again. */
static void uart_quiesce(void *opaque, bool quiesce)
{
    uart *u = opaque;
    pthread_mutex_lock(&u->lock);
    u->held = quiesce;
    pthread_mutex_unlock(&u->lock);
    if (!quiesce)
        hvi_os_notifier_signal(u->resume_fd);
}

/* On the event thread, after a pause: watch in_fd again if the receiver
 * can take input. */
static void on_resume(void *opaque, int fd, uint32_t events)
{
    uart *u = opaque;
    (void)events;
    hvi_os_notifier_drain(fd);
    pthread_mutex_lock(&u->lock);
    bool watch = take_watch(u);
    pthread_mutex_unlock(&u->lock);
    if (watch)
        watch_input(u);
}

static void uart_free(uart *u)
{
    hvi_os_notifier_close(u->resume_fd);
    pthread_mutex_destroy(&u->lock);
    pthread_mutex_destroy(&u->out_lock);
    free(u);
}

/* No I/O callback runs any more (the device framework saw to that); the
 * event thread may, until unwatched. */
static void uart_destroy(void *opaque)
{
    uart *u = opaque;
    pthread_mutex_lock(&u->lock);
    bool watched = u->watching;
    u->watching = false;
    /* Leave the GSI low for whatever uses it next. */
    if (u->regs.line && !u->regs.polled)
        hvc_vm_set_irq(u->vm, u->regs.irq, 0);
    pthread_mutex_unlock(&u->lock);
    if (watched)
        hvc_vm_unwatch_fd(u->vm, u->in_fd);
    if (u->resume_fd >= 0)
        hvc_vm_unwatch_fd(u->vm, u->resume_fd);
    uart_free(u);
}

/* Two slots: the output descriptor, then the input one. */
static int uart_handover_fds(void *opaque, int *fds, size_t capacity,
                             size_t *count)
{
    uart *u = opaque;
    *count = 2;
    if (capacity >= 2) {
        fds[0] = u->out_fd;
        fds[1] = u->in_fd;
    }
    return 0;
}

static const hvc_device_ops uart_ops = {
    .version = HVC_DEVICE_OPS_VERSION,
    .type = uart_type,
    .read = uart_read,
    .write = uart_write,
    .reset = uart_reset,
    .destroy = uart_destroy,
    .handover_fds = uart_handover_fds,
};

static int check_options(hvc_vm *vm, const hvc_serial_options *o,
                         enum out_kind *kind)
{
    uint32_t lines = hvi_vm_irq_lines(vm);
    if (o->irq >= lines)
        return hvi_error(-EINVAL,
                         "hvc_serial_options.irq %u is not a GSI (0..%u)",
                         o->irq, lines - 1);
    if (o->port > 0x10000 - HVI_UART_PORTS)
        return hvi_error(-EINVAL,
                         "hvc_serial_options.port 0x%" PRIx64
                         ": the UART's %d ports would pass port 0xffff",
                         o->port, HVI_UART_PORTS);
    if (o->name && !*o->name)
        return hvi_error(-EINVAL, "hvc_serial_options.name is empty");
    *kind = OUT_PLAIN;
    if (o->output_fd >= 0) {
        struct stat st;
        if (fstat(o->output_fd, &st) < 0)
            return hvi_error(-EINVAL,
                             "hvc_serial_options.output_fd %d is not an "
                             "open descriptor",
                             (int)o->output_fd);
        if (S_ISFIFO(st.st_mode))
            *kind = OUT_PIPE;
        else if (S_ISSOCK(st.st_mode))
            *kind = OUT_SOCKET;
    }
    return 0;
}

/* Attaches under the caller's name, or the first free "serial<N>". A
 * name another thread takes between the lookup and the attach is retried;
 * any other -EEXIST (an overlapping port range) is the answer. */
static int attach(uart *u, const hvc_serial_options *o, hvc_device **out)
{
    hvc_device_range range = {HVC_IO_PIO, 0, o->port, HVI_UART_PORTS};
    hvc_device_options d = HVC_DEVICE_OPTIONS_INIT;
    d.nr_ranges = 1;
    d.ranges = &range;
    if (o->name) {
        d.name = o->name;
        return hvc_vm_add_device(u->vm, &uart_ops, u, &d, out);
    }
    char name[32];
    for (unsigned n = 0;; n++) {
        hvc_device *other;
        snprintf(name, sizeof(name), "serial%u", n);
        if (hvc_vm_find_device(u->vm, name, &other) == 0)
            continue;
        d.name = name;
        int r = hvc_vm_add_device(u->vm, &uart_ops, u, &d, out);
        if (r != -EEXIST || hvc_vm_find_device(u->vm, name, &other) != 0)
            return r;
    }
}

int hvc_serial_create(hvc_vm *vm, const hvc_serial_options *opts,
                      hvc_device **out)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_serial_create: VM is NULL");
    hvc_serial_options o = HVC_SERIAL_OPTIONS_INIT;
    if (opts) {
        int r = hvi_copy_options(&o, sizeof(o), opts,
                                 offsetof(hvc_serial_options, name) +
                                     sizeof(o.name),
                                 "hvc_serial_options");
        if (r < 0)
            return r;
    }
    enum out_kind kind;
    int r = check_options(vm, &o, &kind);
    if (r < 0)
        return r;
    uart *u = calloc(1, sizeof(*u));
    if (!u)
        return hvi_error(-ENOMEM, "out of memory creating a UART");
    u->vm = vm;
    u->in_fd = o.input_fd >= 0 ? o.input_fd : -1;
    u->resume_fd = -1;
    u->out_fd = o.output_fd >= 0 ? o.output_fd : -1;
    u->out_kind = kind;
    u->out_fn = o.output_fn;
    u->out_opaque = o.output_opaque;
    u->regs.vm = vm;
    u->regs.irq = o.irq;
    hvi_uart_reset(&u->regs);
    pthread_mutex_init(&u->lock, NULL);
    pthread_mutex_init(&u->out_lock, NULL);

    /* Lowering the idle line tells whether there is an irqchip to drive;
     * without one the UART is polled, as platform.h promises. */
    r = hvc_vm_set_irq(vm, o.irq, 0);
    if (r == -ENOTSUP) {
        u->regs.polled = true;
    } else if (r < 0) {
        uart_free(u);
        return r;
    }
    /* Claimed before the device is visible, so a guest read cannot start
     * the watch itself in the meantime. */
    u->watching = u->in_fd >= 0;
    hvc_device *dev;
    r = attach(u, &o, &dev);
    if (r < 0) {
        uart_free(u);
        return r;
    }
    if (u->in_fd >= 0) {
        r = hvi_os_notifier_create(&u->resume_fd);
        if (r == 0 && (r = hvc_vm_watch_fd(vm, u->resume_fd, HVC_FD_READABLE,
                                           on_resume, u)) < 0) {
            hvi_os_notifier_close(u->resume_fd);
            u->resume_fd = -1;
        }
        if (r == 0) {
            hvi_device_set_quiesce(dev, uart_quiesce);
            r = hvc_vm_watch_fd(vm, u->in_fd, HVC_FD_READABLE, on_input, u);
        }
        if (r < 0) {
            char why[256];
            snprintf(why, sizeof(why), "%s", hvc_last_error());
            pthread_mutex_lock(&u->lock);
            u->watching = false;
            pthread_mutex_unlock(&u->lock);
            hvc_vm_remove_device(vm, dev); /* frees u */
            return hvi_error(r, "UART input_fd %d: %s", (int)o.input_fd, why);
        }
    }
    if (out)
        *out = dev;
    return 0;
}

int hvc_serial_receive(hvc_device *dev, const void *data, size_t length)
{
    if (!dev)
        return hvi_error(-EINVAL, "hvc_serial_receive: device is NULL");
    if (hvc_device_type(dev) != uart_type)
        return hvi_error(-EINVAL,
                         "hvc_serial_receive: device \"%s\" is a %s, not "
                         "a 16550A UART",
                         hvc_device_name(dev), hvc_device_type(dev));
    if (!data && length)
        return hvi_error(-EINVAL, "hvc_serial_receive: data is NULL");
    uart *u = hvc_device_opaque(dev);
    const uint8_t *p = data;
    size_t taken = 0;
    pthread_mutex_lock(&u->lock);
    /* In loopback the receiver hears only the transmitter. */
    if (!hvi_uart_loopback(&u->regs)) {
        while (taken < length && hvi_uart_rx_push(&u->regs, p[taken]))
            taken++;
        hvi_uart_update_irq(&u->regs);
    }
    pthread_mutex_unlock(&u->lock);
    return (int)taken;
}
