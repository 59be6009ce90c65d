/* Devices on a post-copy destination whose rings and buffers have not
 * arrived yet, and a receiver whose sender stalls.
 *
 * The source VM has a virtio-blk (its own worker thread), a virtio-rng and
 * a virtio-console (both served on the VM's event thread). After the
 * first pre-copy pass the driver (the test, through the host) publishes a
 * virtio-blk write and a read of it back, a virtio-rng request and a line
 * for the console to transmit, without notifying: the rings
 * and buffers are dirty, so they are exactly the pages left for
 * post-copy, and the source sends them slowly (the white-box knob
 * hvi_pc_test_delay_us: a slow link). On the destination:
 *
 *   - the event thread stays responsive while the virtio-rng's pages are
 *     missing (an fd-watch round trip, measured), the vCPU reaches both
 *     devices' registers meanwhile (neither device lock is held across a
 *     wait on the link), and the deferred requests complete once their
 *     pages arrive, with the right data; a device model of the test's
 *     own on the event thread gets -EAGAIN, then its hvc_vm_when_present()
 *     wake-up;
 *   - a sender that stalls during post-copy fails it at the receiver's
 *     timeout, as a cut link does, on both sides (a stall before:
 *     test_migration_timeout.c).
 *
 * White-box (the delay knob and the page-presence check are internal):
 * linked against the static library. */
#include "migtest.h"
#include "vqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* src/migration/postcopy.h, src/core/internal.h */
extern _Atomic uint32_t hvi_pc_test_delay_us;
int hvi_postcopy_want(hvc_vm *vm, uint64_t gpa, uint64_t len);

TestSuite(migration_postcopy_dev, .init = hvt_require_kvm, .timeout = 180);

/* virtio-rng, beside vqueue.h's virtio-blk at BASE */
#define RBASE (BASE + 0x1000u)
#define RIRQ 6
#define RDESC 0x240000u
#define RAVAIL 0x241000u
#define RUSED 0x242000u
#define RBUF 0x243000u
#define RLEN 64u
/* virtio-console: its transmit queue (1) sends CMSG; receive queue 0 */
#define CBASE (BASE + 0x2000u)
#define CIRQ 7
#define CRX 0x250000u /* desc, +0x1000 avail, +0x2000 used */
#define CTX 0x254000u
#define CBUF 0x257000u
#define CMSG "console output from a page that came late\n"
/* a page only the test's own device model (an fd-watch callback) reads,
 * and one it asks for and cancels */
#define XPAGE 0x320000u
#define XCANCEL 0x321000u
#define XBYTE 0x6b
/* the virtio-blk request's data: written, then read back */
#define DATA_W 0x300000u
#define DATA_R 0x301000u
#define SECTOR 13u

#define MAX_PROBES 4096

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

/* The driver's side of a virtio device's initialisation at @p base, its
 * queue q's rings at rings[q] (desc, avail, used). */
static void dev_init(hvt *t, uint32_t base, uint32_t nq,
                     const uint64_t (*rings)[3])
{
    struct script s = {.n = 0};
    struct op *o = s.ops;
#define W(reg, v) (o[s.n++] = (struct op){base + (reg), (v), 4, OP_WRITE})
    W(0x070, 0);
    W(0x070, 1);
    W(0x070, 3);
    W(0x024, 1);
    W(0x020, 1); /* VIRTIO_F_VERSION_1 */
    W(0x024, 0);
    W(0x020, 0);
    W(0x070, 0xb);
    for (uint32_t q = 0; q < nq; q++) {
        W(0x030, q);
        W(0x038, QSIZE);
        W(0x080, rings[q][0]);
        W(0x084, 0);
        W(0x090, rings[q][1]);
        W(0x094, 0);
        W(0x0a0, rings[q][2]);
        W(0x0a4, 0);
        W(0x044, 1);
    }
    W(0x070, 0xf);
#undef W
    int st = s.n;
    o[s.n++] = (struct op){base + 0x070, 0, 4, OP_READ};
    vq_run(t, &s);
    cr_assert_eq(s.ops[st].value, 0xf, "device at 0x%x: status 0x%llx", base,
                 (unsigned long long)s.ops[st].value);
}

/* What the destination's virtio-console wrote, and when. */
static char cons_out[256];
static size_t cons_len;
static _Atomic uint64_t cons_ns;

static void on_console(void *opaque, const void *data, size_t len)
{
    (void)opaque;
    if (len > sizeof(cons_out) - 1 - cons_len)
        len = sizeof(cons_out) - 1 - cons_len;
    memcpy(cons_out + cons_len, data, len);
    cons_len += len;
    atomic_store(&cons_ns, now_ns());
}

static int add_console(hvc_vm *vm, bool capture)
{
    hvc_virtio_console_options co = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
    co.mmio = (hvc_virtio_mmio){CBASE, CIRQ, 0};
    co.output_fn = capture ? on_console : NULL;
    return hvc_virtio_console_create(vm, &co, NULL);
}

static const char *disk_path;

static int attach(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)opaque, (void)user, (void)len;
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.path = disk_path;
    o.serial = "SERIAL-1234";
    int r = hvc_virtio_blk_create(vm, &o, NULL);
    if (r == 0)
        r = hvc_virtio_rng_create(vm, &(hvc_virtio_mmio){RBASE, RIRQ, 0}, NULL,
                                  NULL);
    if (r == 0)
        r = add_console(vm, true);
    return r;
}

/* --- the source: requests published after the first pass --- */

struct source {
    hvc_vm *vm;
    int published; /* 1, or a negative errno */
};

static int wr(hvc_vm *vm, uint64_t gpa, const void *p, size_t n, int r)
{
    return r < 0 ? r : hvc_vm_write(vm, gpa, p, n);
}

static int put_desc(hvc_vm *vm, uint64_t table, uint16_t i, struct desc d,
                    int r)
{
    return wr(vm, table + 16u * i, &d, sizeof(d), r);
}

/* After each pre-copy round (the first only does anything): the requests
 * go into pages that are then dirty, hence left for post-copy. Not on the
 * test's thread of Criterion's: no assertion here. */
static int publish(void *opaque, const hvc_migrate_stats *st)
{
    struct source *src = opaque;
    (void)st;
    if (src->published)
        return 0;
    hvc_vm *vm = src->vm;
    int r = 0;
    /* virtio-blk: write DATA_W to SECTOR, then read it into DATA_R */
    uint8_t data[512], zero[512] = {0};
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(0xa5 ^ i);
    r = wr(vm, DATA_W, data, sizeof(data), r);
    r = wr(vm, DATA_R, zero, sizeof(zero), r);
    for (uint16_t slot = 0; slot < 2; slot++) {
        uint64_t hdr = BUF + 0x100u * slot;
        struct {
            uint32_t type, reserved;
            uint64_t sector;
        } h = {slot == 0 ? 1u : 0u, 0, SECTOR};
        uint8_t poison = 0xee;
        r = wr(vm, hdr, &h, sizeof(h), r);
        r = wr(vm, hdr + 0x80, &poison, 1, r);
        uint16_t d0 = (uint16_t)(3 * slot);
        r = put_desc(vm, DESC, d0,
                     (struct desc){hdr, 16, 1, (uint16_t)(d0 + 1)}, r);
        r = put_desc(vm, DESC, (uint16_t)(d0 + 1),
                     (struct desc){slot == 0 ? DATA_W : DATA_R, 512,
                                   (uint16_t)(1 | (slot == 0 ? 0 : 2)),
                                   (uint16_t)(d0 + 2)},
                     r);
        r = put_desc(vm, DESC, (uint16_t)(d0 + 2),
                     (struct desc){hdr + 0x80, 1, 2, 0}, r);
        r = wr(vm, AVAIL + 4 + 2u * slot, &d0, 2, r);
    }
    uint16_t idx = 2;
    r = wr(vm, AVAIL + 2, &idx, 2, r);
    /* virtio-rng: one 64-byte buffer */
    uint8_t rz[RLEN] = {0};
    uint16_t head = 0, one = 1;
    r = wr(vm, RBUF, rz, sizeof(rz), r);
    r = put_desc(vm, RDESC, 0, (struct desc){RBUF, RLEN, 2, 0}, r);
    r = wr(vm, RAVAIL + 4, &head, 2, r);
    r = wr(vm, RAVAIL + 2, &one, 2, r);
    /* virtio-console: one line to transmit */
    r = wr(vm, CBUF, CMSG, strlen(CMSG), r);
    r = put_desc(vm, CTX, 0, (struct desc){CBUF, strlen(CMSG), 0, 0}, r);
    r = wr(vm, CTX + 0x1000 + 4, &head, 2, r);
    r = wr(vm, CTX + 0x1000 + 2, &one, 2, r);
    uint8_t x[64];
    memset(x, XBYTE, sizeof(x));
    r = wr(vm, XPAGE, x, sizeof(x), r);
    r = wr(vm, XCANCEL, x, sizeof(x), r);
    src->published = r < 0 ? r : 1;
    return 0;
}

/* --- the destination, on a thread of its own --- */

struct probe {
    hvc_vm *vm;
    int efd;
    _Atomic uint64_t seen_ns;
};

static void on_probe(void *opaque, int fd, uint32_t events)
{
    struct probe *p = opaque;
    uint64_t n;
    (void)events;
    if (read(fd, &n, sizeof(n)) == sizeof(n))
        atomic_store(&p->seen_ns, now_ns());
}

/* The vCPU reads both devices' status registers (the device locks); its
 * round trip in ns, or 0 when the run failed. */
static uint64_t vcpu_probe(hvc_vm *vm, hvc_vcpu *v)
{
    struct op ops[3] = {{BASE + 0x070, 0, 4, OP_READ},
                        {RBASE + 0x070, 0, 4, OP_READ},
                        {0, 0, 0, OP_END}};
    uint64_t t0 = now_ns();
    if (hvc_vm_write(vm, DATA_IN, ops, sizeof(ops)) < 0)
        return 0;
    hvc_vcpu_mode_options m = HVC_VCPU_MODE_OPTIONS_INIT;
    m.mode = HVC_X86_MODE_LONG64;
    m.entry = GUEST_LOAD;
    m.stack = GUEST_STACK;
    m.tables_addr = GUEST_TABLES;
    const hvc_exit *e;
    if (hvc_vcpu_set_mode(v, &m) < 0 || hvc_vcpu_run(v, &e) < 0 ||
        e->reason != HVC_EXIT_PIO || e->u.io.port != PORT_DONE)
        return 0;
    uint64_t t = now_ns() - t0;
    if (hvc_vm_read(vm, DATA_IN, ops, sizeof(ops)) < 0 || ops[0].value != 0xf ||
        ops[1].value != 0xf)
        return 0;
    return t ? t : 1;
}

/* A device model of the test's own, on the event thread: kicked, it
 * reads XPAGE; a page that has not arrived fails with -EAGAIN there, so
 * it asks to be woken (hvc_vm_when_present) and reads again then. */
struct ext {
    hvc_vm *vm;
    int kick, wake, cancel;
    int first_read, armed, cancel_armed, second_read;
    uint8_t data[64];
    _Atomic int done;
};

static void ext_kick(void *opaque, int fd, uint32_t events)
{
    struct ext *x = opaque;
    uint64_t n;
    (void)events;
    if (read(fd, &n, sizeof(n)) != sizeof(n))
        return;
    x->first_read = hvc_vm_read(x->vm, XPAGE, x->data, sizeof(x->data));
    x->armed = hvc_vm_when_present(x->vm, XPAGE, sizeof(x->data), x->wake);
    x->cancel_armed = hvc_vm_when_present(x->vm, XCANCEL, 64, x->cancel);
    hvc_vm_when_present_cancel(x->vm, x->cancel);
}

static void ext_wake(void *opaque, int fd, uint32_t events)
{
    struct ext *x = opaque;
    uint64_t n;
    (void)events;
    if (read(fd, &n, sizeof(n)) != sizeof(n))
        return;
    x->second_read = hvc_vm_read(x->vm, XPAGE, x->data, sizeof(x->data));
    atomic_store(&x->done, 1);
}

struct dst {
    hvc_hypervisor *hv;
    int fd;
    uint32_t timeout_ms;
    bool probe; /* measure while post-copy runs */
    int r;
    char why[512];
    hvc_vm *vm;
    /* probes sent while a virtio-rng page was missing: event-thread
     * round trips */
    uint64_t ev[MAX_PROBES];
    size_t nev, ev_lost;
    /* probes sent while a virtio-blk page was missing: the vCPU at both
     * devices */
    uint64_t cpu[MAX_PROBES];
    size_t ncpu, cpu_failed;
    int wait;
    char wait_why[512];
    hvc_postcopy_stats st;
    uint16_t rng_used, blk_used;
    struct ext x;
    pthread_t t;
};

static bool rng_missing(hvc_vm *vm)
{
    return hvi_postcopy_want(vm, RAVAIL, 6 + 2 * QSIZE) == 0 ||
           hvi_postcopy_want(vm, RUSED, 6 + 8 * QSIZE) == 0 ||
           hvi_postcopy_want(vm, RDESC, 16 * QSIZE) == 0 ||
           hvi_postcopy_want(vm, RBUF, RLEN) == 0;
}

static bool blk_missing(hvc_vm *vm)
{
    return hvi_postcopy_want(vm, AVAIL, 6 + 2 * QSIZE) == 0 ||
           hvi_postcopy_want(vm, DESC, 16 * QSIZE) == 0 ||
           hvi_postcopy_want(vm, BUF, 0x200) == 0 ||
           hvi_postcopy_want(vm, DATA_W, 0x2000) == 0;
}

static int pc_state(hvc_vm *vm)
{
    hvc_postcopy_stats st = HVC_POSTCOPY_STATS_INIT;
    return hvc_vm_postcopy_stats(vm, &st) < 0 ? -1 : (int)st.state;
}

static void measure(struct dst *d)
{
    struct probe p = {.vm = d->vm};
    p.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    hvc_vcpu *v = NULL;
    if (p.efd < 0 ||
        hvc_vm_watch_fd(d->vm, p.efd, HVC_FD_READABLE, on_probe, &p) < 0 ||
        hvc_vm_get_vcpu(d->vm, 0, &v) < 0) {
        d->ev_lost = SIZE_MAX;
        return;
    }
    /* the test's own device model looks at XPAGE, not there yet */
    struct ext *x = &d->x;
    x->vm = d->vm;
    x->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    x->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    x->cancel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint64_t one = 1;
    x->first_read = x->armed = x->cancel_armed = x->second_read = 99;
    if (x->kick < 0 || x->wake < 0 || x->cancel < 0 ||
        hvc_vm_watch_fd(d->vm, x->kick, HVC_FD_READABLE, ext_kick, x) < 0 ||
        hvc_vm_watch_fd(d->vm, x->wake, HVC_FD_READABLE, ext_wake, x) < 0 ||
        write(x->kick, &one, sizeof(one)) != sizeof(one)) {
        d->ev_lost = SIZE_MAX;
        return;
    }
    uint64_t until = now_ns() + 20000000000ull;
    while (pc_state(d->vm) == HVC_POSTCOPY_RUNNING && now_ns() < until &&
           d->nev < MAX_PROBES && d->ncpu < MAX_PROBES) {
        bool rng = rng_missing(d->vm);
        uint64_t t0 = now_ns();
        if (write(p.efd, &one, sizeof(one)) != sizeof(one))
            break;
        while (atomic_load(&p.seen_ns) < t0 && now_ns() - t0 < 2000000000ull)
            sleep_us(20);
        uint64_t seen = atomic_load(&p.seen_ns);
        if (rng) { /* sent while a page was missing */
            if (seen < t0)
                d->ev_lost++;
            else
                d->ev[d->nev++] = seen - t0;
        }
        bool blk = blk_missing(d->vm);
        uint64_t c = vcpu_probe(d->vm, v);
        if (blk) {
            if (!c)
                d->cpu_failed++;
            else
                d->cpu[d->ncpu++] = c;
        }
        sleep_us(2000);
    }
    hvc_vm_unwatch_fd(d->vm, p.efd);
    close(p.efd);
}

/* After post-copy: the test's device model was woken and read XPAGE. */
static void ext_finish(struct dst *d)
{
    struct ext *x = &d->x;
    for (int i = 0; i < 400 && !atomic_load(&x->done); i++)
        sleep_us(5000);
    hvc_vm_unwatch_fd(d->vm, x->kick);
    hvc_vm_unwatch_fd(d->vm, x->wake);
}

static void *destination(void *arg)
{
    struct dst *d = arg;
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = attach;
    ro.timeout_ms = d->timeout_ms;
    d->r = hvc_vm_migrate_receive(d->hv, d->fd, &ro, &d->vm);
    if (d->r < 0) {
        snprintf(d->why, sizeof(d->why), "%s", hvc_last_error());
        return NULL;
    }
    if (d->probe)
        measure(d);
    d->wait = hvc_vm_postcopy_wait(d->vm, 30000);
    snprintf(d->wait_why, sizeof(d->wait_why), "%s",
             d->wait < 0 ? hvc_last_error() : "");
    d->st.size = sizeof(d->st);
    hvc_vm_postcopy_stats(d->vm, &d->st);
    if (d->probe)
        ext_finish(d);
    if (d->wait == 0) {
        /* the requests set aside complete once their pages are here */
        for (int i = 0; i < 1000 && (d->rng_used < 1 || d->blk_used < 2 ||
                                     !atomic_load(&cons_ns));
             i++) {
            sleep_us(5000);
            hvc_vm_read(d->vm, RUSED + 2, &d->rng_used, 2);
            hvc_vm_read(d->vm, USED + 2, &d->blk_used, 2);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The source VM with both devices, the driver's initialisation done. */
static void open_source(hvt *t, char *path)
{
    hvc_device *dev;
    vq_blk_setup(t, path, &dev); /* virtio-blk at BASE, queue at DESC */
    HVT_OK(hvc_virtio_rng_create(t->vm, &(hvc_virtio_mmio){RBASE, RIRQ, 0},
                                 NULL, NULL));
    static const uint64_t rng_rings[1][3] = {{RDESC, RAVAIL, RUSED}};
    dev_init(t, RBASE, 1, rng_rings);
    HVT_OK(add_console(t->vm, false));
    static const uint64_t cons_rings[2][3] = {
        {CRX, CRX + 0x1000, CRX + 0x2000}, {CTX, CTX + 0x1000, CTX + 0x2000}};
    dev_init(t, CBASE, 2, cons_rings);
    disk_path = path;
    memset(cons_out, 0, sizeof(cons_out));
    cons_len = 0;
    atomic_store(&cons_ns, 0);
}

static void start_destination(struct dst *d, int fd, uint32_t timeout_ms,
                              bool probe)
{
    d->fd = fd;
    d->timeout_ms = timeout_ms;
    d->probe = probe;
    HVT_OK(hvc_hypervisor_open("kvm", &d->hv));
    cr_assert_eq(pthread_create(&d->t, NULL, destination, d), 0);
}

static int migrate(hvt *t, int fd, struct source *src, hvc_migrate_stats *st)
{
    src->vm = t->vm;
    hvc_migrate_options o = HVC_MIGRATE_OPTIONS_INIT;
    o.flags = HVC_MIGRATE_POSTCOPY;
    o.postcopy_after_rounds = 1;
    o.progress = publish;
    o.opaque = src;
    return hvc_vm_migrate_send(t->vm, fd, &o, st);
}

Test(migration_postcopy_dev, missing_ring_pages_do_not_stall_the_event_thread)
{
    hvt t;
    char path[64];
    open_source(&t, path);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    static struct dst d;
    memset(&d, 0, sizeof(d));
    start_destination(&d, sv[1], 0, true);
    /* a slow link: each post-copy run, pushed or asked for, takes 250 ms */
    atomic_store(&hvi_pc_test_delay_us, 250000u);
    struct source src = {0};
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    int r = migrate(&t, sv[0], &src, &st);
    char why[512];
    snprintf(why, sizeof(why), "%s", r < 0 ? hvc_last_error() : "");
    atomic_store(&hvi_pc_test_delay_us, 0u);
    pthread_join(d.t, NULL);
    cr_assert_eq(d.r, 0, "receive: %s", d.why);
    cr_assert_eq(r, 0, "send: %s", why);
    cr_assert_eq(src.published, 1, "publishing the requests: %d",
                 src.published);
    cr_assert_eq(st.postcopy, 1);
    cr_assert_geq(st.postcopy_pages, 8, "%llu pages left for post-copy",
                  (unsigned long long)st.postcopy_pages);
    cr_assert_eq(d.wait, 0, "post-copy on the destination: %s", d.wait_why);
    cr_assert_eq(d.st.state, HVC_POSTCOPY_COMPLETE);

    /* The event thread answered while a virtio-rng page was missing, and
     * the vCPU reached both devices while a virtio-blk page was. */
    cr_assert_eq(d.ev_lost, 0, "%zu fd-watch probes never came back",
                 d.ev_lost);
    cr_assert_eq(d.cpu_failed, 0, "%zu vCPU probes failed", d.cpu_failed);
    cr_assert_gt(d.nev, 0, "no event-thread probe while a page was missing");
    cr_assert_gt(d.ncpu, 0, "no vCPU probe while a page was missing");
    qsort(d.ev, d.nev, sizeof(d.ev[0]), cmp_u64);
    uint64_t ev_med = d.ev[d.nev / 2], ev_p90 = d.ev[d.nev * 9 / 10],
             ev_max = d.ev[d.nev - 1];
    qsort(d.cpu, d.ncpu, sizeof(d.cpu[0]), cmp_u64);
    uint64_t cpu_med = d.cpu[d.ncpu / 2], cpu_p90 = d.cpu[d.ncpu * 9 / 10],
             cpu_max = d.cpu[d.ncpu - 1];
    fprintf(
        stderr,
        "post-copy, 250 ms per run: %llu pages, %llu asked for; "
        "event-thread round trip while a virtio-rng page was missing "
        "(%zu probes): median %llu us, p90 %llu us, max %llu us; vCPU at "
        "both devices while a virtio-blk page was missing (%zu): median "
        "%llu us, p90 %llu us, max %llu us\n",
        (unsigned long long)st.postcopy_pages,
        (unsigned long long)st.postcopy_pages_requested, d.nev,
        (unsigned long long)ev_med / 1000, (unsigned long long)ev_p90 / 1000,
        (unsigned long long)ev_max / 1000, d.ncpu,
        (unsigned long long)cpu_med / 1000, (unsigned long long)cpu_p90 / 1000,
        (unsigned long long)cpu_max / 1000);
    /* A wait on the link is at least a run: 250 ms. Under 10 ms for nine
     * in ten (a loaded two-core host may delay a few by scheduling: 80 ms
     * was seen at a load of 10), and none near a run. */
    cr_assert_lt(ev_max, 150000000, "event thread max %llu us",
                 (unsigned long long)ev_max / 1000);
    cr_assert_lt(ev_p90, 10000000, "event thread p90 %llu us",
                 (unsigned long long)ev_p90 / 1000);
    cr_assert_lt(cpu_max, 150000000, "vCPU max %llu us",
                 (unsigned long long)cpu_max / 1000);
    cr_assert_lt(cpu_p90, 10000000, "vCPU p90 %llu us",
                 (unsigned long long)cpu_p90 / 1000);
    /* ... over the whole window: a probe every few ms */
    cr_assert_geq(d.nev, 10, "only %zu event-thread probes", d.nev);
    cr_assert_geq(d.ncpu, 10, "only %zu vCPU probes", d.ncpu);

    /* The test's own device model on the event thread: the accessor did
     * not wait for the missing page (-EAGAIN), the wake-up came once it
     * was in, and the read then found the source's bytes; the cancelled
     * wake-up wrote nothing. */
    cr_assert_eq(d.x.first_read, -EAGAIN, "read on the event thread: %d",
                 d.x.first_read);
    cr_assert_eq(d.x.armed, 0, "hvc_vm_when_present: %d", d.x.armed);
    cr_assert_eq(d.x.cancel_armed, 0, "hvc_vm_when_present: %d",
                 d.x.cancel_armed);
    cr_assert(atomic_load(&d.x.done), "the wake-up never came");
    cr_assert_eq(d.x.second_read, 0, "read after the wake-up: %d",
                 d.x.second_read);
    for (unsigned i = 0; i < sizeof(d.x.data); i++)
        cr_assert_eq(d.x.data[i], XBYTE, "byte %u: 0x%x", i, d.x.data[i]);
    uint64_t n;
    cr_assert_eq(read(d.x.cancel, &n, sizeof(n)), -1,
                 "the cancelled wake-up was written");
    close(d.x.kick);
    close(d.x.wake);
    close(d.x.cancel);

    /* The requests set aside completed once their pages were in. */
    cr_assert_str_eq(cons_out, CMSG, "virtio-console wrote \"%s\"", cons_out);
    cr_assert_eq(d.rng_used, 1, "virtio-rng used index %u", d.rng_used);
    cr_assert_eq(d.blk_used, 2, "virtio-blk used index %u", d.blk_used);
    hvt u = {.hv = d.hv, .vm = d.vm};
    uint32_t elem[2];
    HVT_OK(hvc_vm_read(u.vm, RUSED + 4, elem, sizeof(elem)));
    cr_assert_eq(elem[0], 0);
    cr_assert_eq(elem[1], RLEN, "virtio-rng wrote %u bytes", elem[1]);
    uint8_t rnd[RLEN], zero[RLEN] = {0};
    HVT_OK(hvc_vm_read(u.vm, RBUF, rnd, sizeof(rnd)));
    cr_assert(memcmp(rnd, zero, RLEN) != 0, "the random bytes are all zero");
    cr_assert_eq(vq_blk_status(&u, 0), 0, "write status");
    cr_assert_eq(vq_blk_status(&u, 1), 0, "read status");
    uint8_t want[512], back[512], disk[512];
    for (unsigned i = 0; i < sizeof(want); i++)
        want[i] = (uint8_t)(0xa5 ^ i);
    HVT_OK(hvc_vm_read(u.vm, DATA_R, back, sizeof(back)));
    cr_assert_arr_eq(back, want, 512, "the read back differs");
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, disk, 512, SECTOR * 512), 512);
    cr_assert_arr_eq(disk, want, 512, "the disk differs");
    close(fd);
    /* the source's devices, paused for good, served nothing */
    uint16_t used;
    HVT_OK(hvc_vm_read(t.vm, USED + 2, &used, 2));
    cr_assert_eq(used, 0);
    HVT_OK(hvc_vm_read(t.vm, RUSED + 2, &used, 2));
    cr_assert_eq(used, 0);
    close(sv[0]);
    close(sv[1]);
    hvc_vm_destroy(u.vm);
    hvc_hypervisor_close(u.hv);
    vq_vclose(&t);
    unlink(path);
}

/* A sender that stalls during post-copy: the destination's receiver gives
 * up after its timeout, post-copy fails as on a cut link (the pages not
 * yet there are reported lost, the guest is stopped), and the source
 * hears it. */
Test(migration_postcopy_dev, stalled_link_during_postcopy_fails_it)
{
    hvt t;
    char path[64];
    open_source(&t, path);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    static struct dst d;
    memset(&d, 0, sizeof(d));
    start_destination(&d, sv[1], 300, false);
    /* the first run is 1.5 s away: far more than the 300 ms allowed */
    atomic_store(&hvi_pc_test_delay_us, 1500000u);
    struct source src = {0};
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    uint64_t t0 = now_ns();
    int r = migrate(&t, sv[0], &src, &st);
    char why[512];
    snprintf(why, sizeof(why), "%s", r < 0 ? hvc_last_error() : "");
    atomic_store(&hvi_pc_test_delay_us, 0u);
    pthread_join(d.t, NULL);
    uint64_t ms = (now_ns() - t0) / 1000000u;
    cr_assert_eq(d.r, 0, "receive: %s", d.why);
    cr_assert_eq(src.published, 1);
    fprintf(stderr,
            "stalled post-copy link: destination: %s\nsource (%llu "
            "ms): %s\n",
            d.wait_why, (unsigned long long)ms, why);
    cr_assert_eq(d.wait, -ETIMEDOUT, "post-copy wait: %d (%s)", d.wait,
                 d.wait_why);
    cr_assert(strstr(d.wait_why, "stalled") && strstr(d.wait_why, "300 ms"),
              "%s", d.wait_why);
    cr_assert_eq(d.st.state, HVC_POSTCOPY_FAILED);
    cr_assert_gt(d.st.pages_lost, 0);
    cr_assert_lt(d.st.elapsed_ms, 1500, "post-copy failed after %llu ms",
                 (unsigned long long)d.st.elapsed_ms);
    /* the guest is stopped for good */
    hvc_vcpu *v;
    const hvc_exit *e;
    HVT_OK(hvc_vm_get_vcpu(d.vm, 0, &v));
    cr_assert_lt(hvc_vcpu_run(v, &e), 0);
    /* the source: the link failed after the switchover, pages lost */
    cr_assert_lt(r, 0);
    cr_assert_gt(st.postcopy_pages_lost, 0);
    close(sv[0]);
    close(sv[1]);
    hvc_vm_destroy(d.vm);
    hvc_hypervisor_close(d.hv);
    vq_vclose(&t);
    unlink(path);
}
