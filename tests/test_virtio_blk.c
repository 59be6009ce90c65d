/* virtio-blk's request worker (issue 12): a disk that blocks must stall
 * neither the VM's event thread (the other devices) nor the vCPUs that
 * touch the slow device's registers; a pause, a save, a reset and a
 * destroy that come while a request is blocked wait for it and leave a
 * consistent state. Driven from the host at the queue level, as
 * tests/test_virtio.c does, on real /dev/kvm.
 *
 * The slow disk: the data buffer of a read lies in a guest memory region
 * the test supplies (hvc_memory_options.host_addr) and has registered with
 * userfaultfd. The device's preadv() into it faults in the kernel and
 * sleeps until the test's fault thread fills the page, which it does only
 * when told to. The backing file itself is an ordinary file. */
#include "vqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLOW_GPA 0x800000u
#define SLOW_LEN 0x4000u
#define NOTIFY 0x050
#define STATUS 0x070
#define ISR 0x060
#define BLK_IN 0
#define BLK_OUT 1

/* Where each device's rings and buffers live: device i at BASE + 0x200 i,
 * queue q of it at RING(i) + 0x4000 q. */
#define RING(i) (0x200000u + 0x10000u * (i))
#define DBUF(i) (0x300000u + 0x10000u * (i))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- the slow memory ------------------------------------------------- */

struct slow {
    int uffd;
    uint8_t *mem;
    atomic_int faults;  /* page faults seen */
    atomic_int release; /* fill faulting pages from now on */
    atomic_int quit;
    double deadline; /* fills anyway after this, so nothing hangs */
    pthread_t thread;
};

static void *fault_thread(void *arg)
{
    struct slow *s = arg;
    static uint8_t zero[4096] __attribute__((aligned(4096)));
    while (!atomic_load(&s->quit)) {
        struct pollfd p = {s->uffd, POLLIN, 0};
        if (poll(&p, 1, 10) <= 0)
            continue;
        struct uffd_msg m;
        if (read(s->uffd, &m, sizeof(m)) != sizeof(m) ||
            m.event != UFFD_EVENT_PAGEFAULT)
            continue;
        atomic_fetch_add(&s->faults, 1);
        while (!atomic_load(&s->release) && !atomic_load(&s->quit) &&
               now_s() < s->deadline)
            usleep(1000);
        struct uffdio_copy c = {
            .dst = m.arg.pagefault.address & ~(uint64_t)4095,
            .src = (uint64_t)(uintptr_t)zero,
            .len = 4096,
        };
        ioctl(s->uffd, UFFDIO_COPY, &c); /* EEXIST: filled already */
    }
    return NULL;
}

/* Adds SLOW_LEN bytes of guest memory at SLOW_GPA whose first touch
 * blocks; skips the test where userfaultfd is not available. */
static void slow_open(hvt *t, struct slow *s)
{
    memset(s, 0, sizeof(*s));
    s->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (s->uffd < 0)
        cr_skip_test("userfaultfd is not available (%s): the test needs a "
                     "read that blocks",
                     strerror(errno));
    struct uffdio_api api = {.api = UFFD_API};
    cr_assert_eq(ioctl(s->uffd, UFFDIO_API, &api), 0, "UFFDIO_API: %s",
                 strerror(errno));
    s->mem = mmap(NULL, SLOW_LEN, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(s->mem, MAP_FAILED);
    struct uffdio_register reg = {
        .range = {(uint64_t)(uintptr_t)s->mem, SLOW_LEN},
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    cr_assert_eq(ioctl(s->uffd, UFFDIO_REGISTER, &reg), 0,
                 "UFFDIO_REGISTER: %s", strerror(errno));
    s->deadline = now_s() + 30;
    cr_assert_eq(pthread_create(&s->thread, NULL, fault_thread, s), 0);
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.guest_addr = SLOW_GPA;
    m.length = SLOW_LEN;
    m.host_addr = s->mem;
    HVT_OK(hvc_vm_add_memory(t->vm, &m, NULL));
    cr_assert_eq(atomic_load(&s->faults), 0, "adding the region touched it");
}

/* After the VM is gone. */
static void slow_close(struct slow *s)
{
    atomic_store(&s->quit, 1);
    pthread_join(s->thread, NULL);
    close(s->uffd);
    munmap(s->mem, SLOW_LEN);
}

static void wait_fault(struct slow *s)
{
    for (int i = 0; i < 1000 && atomic_load(&s->faults) == 0; i++)
        usleep(5000);
    cr_assert_gt(atomic_load(&s->faults), 0,
                 "the slow request never reached the disk");
}

/* --- a host-side driver for several devices -------------------------- */

static void w32(struct script *s, uint32_t dev, uint32_t reg, uint32_t v)
{
    s->ops[s->n++] = (struct op){BASE + 0x200u * dev + reg, v, 4, OP_WRITE};
}

static int r32(struct script *s, uint32_t dev, uint32_t reg)
{
    s->ops[s->n] = (struct op){BASE + 0x200u * dev + reg, 0, 4, OP_READ};
    return s->n++;
}

/* Driver initialisation of device @dev (virtio 1.2 3.1.1), appended to a
 * script. */
static void init_dev(struct script *s, uint32_t dev, uint32_t nq)
{
    w32(s, dev, STATUS, 0);
    w32(s, dev, STATUS, 1);
    w32(s, dev, STATUS, 3);
    w32(s, dev, 0x024, 1);
    w32(s, dev, 0x020, 1); /* VIRTIO_F_VERSION_1 */
    w32(s, dev, 0x024, 0);
    w32(s, dev, 0x020, 0);
    w32(s, dev, STATUS, 0xb);
    for (uint32_t q = 0; q < nq; q++) {
        uint32_t ring = RING(dev) + 0x4000u * q;
        w32(s, dev, 0x030, q);
        w32(s, dev, 0x038, QSIZE);
        w32(s, dev, 0x080, ring);
        w32(s, dev, 0x084, 0);
        w32(s, dev, 0x090, ring + 0x1000);
        w32(s, dev, 0x094, 0);
        w32(s, dev, 0x0a0, ring + 0x2000);
        w32(s, dev, 0x0a4, 0);
        w32(s, dev, 0x044, 1);
    }
    w32(s, dev, STATUS, 0xf);
}

static void put_desc(hvt *t, uint32_t ring, uint16_t i, struct desc d)
{
    HVT_OK(hvc_vm_write(t->vm, ring + 16u * i, &d, sizeof(d)));
}

static void publish(hvt *t, uint32_t ring, uint16_t idx, uint16_t head)
{
    HVT_OK(
        hvc_vm_write(t->vm, ring + 0x1000 + 4 + 2u * (idx % QSIZE), &head, 2));
    uint16_t next = (uint16_t)(idx + 1);
    HVT_OK(hvc_vm_write(t->vm, ring + 0x1000 + 2, &next, 2));
}

static uint16_t used_idx(hvc_vm *vm, uint32_t ring)
{
    uint16_t v;
    HVT_OK(hvc_vm_read(vm, ring + 0x2000 + 2, &v, 2));
    return v;
}

/* Request @slot of device @dev (descriptors 3 slot .. 3 slot + 2): header
 * and status in the device's buffer area, data at @data. */
static void blk_req(hvt *t, uint32_t dev, uint16_t slot, uint32_t type,
                    uint64_t sector, uint64_t data, uint32_t len)
{
    uint64_t hdr = DBUF(dev) + 0x100u * slot;
    struct {
        uint32_t type, reserved;
        uint64_t sector;
    } h = {type, 0, sector};
    HVT_OK(hvc_vm_write(t->vm, hdr, &h, sizeof(h)));
    uint16_t d0 = (uint16_t)(3 * slot);
    put_desc(t, RING(dev), d0, (struct desc){hdr, 16, 1, (uint16_t)(d0 + 1)});
    put_desc(t, RING(dev), (uint16_t)(d0 + 1),
             (struct desc){data, len, (uint16_t)(1 | (type == BLK_IN ? 2 : 0)),
                           (uint16_t)(d0 + 2)});
    put_desc(t, RING(dev), (uint16_t)(d0 + 2),
             (struct desc){hdr + 0x80, 1, 2, 0});
    uint8_t poison = 0xee;
    HVT_OK(hvc_vm_write(t->vm, hdr + 0x80, &poison, 1));
}

static uint8_t blk_status(hvc_vm *vm, uint32_t dev, uint16_t slot)
{
    uint8_t s;
    HVT_OK(hvc_vm_read(vm, DBUF(dev) + 0x100u * slot + 0x80, &s, 1));
    return s;
}

static void notify(hvt *t, uint32_t dev, uint32_t q)
{
    struct script s = {.n = 0};
    w32(&s, dev, NOTIFY, q);
    vq_run(t, &s);
}

static hvc_device *add_blk(hvt *t, uint32_t dev, const char *path)
{
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE + 0x200u * dev, IRQ + dev, 0};
    o.path = path;
    hvc_device *d;
    HVT_OK(hvc_virtio_blk_create(t->vm, &o, &d));
    return d;
}

/* Publishes a read of sector 3 into the slow memory on device 0 and
 * notifies it; returns once the device's I/O is blocked on it. */
static void start_slow_read(hvt *t, struct slow *s)
{
    blk_req(t, 0, 0, BLK_IN, 3, SLOW_GPA, 512);
    publish(t, RING(0), 0, 0);
    notify(t, 0, 0);
    wait_fault(s);
}

static void wait_used(hvc_vm *vm, uint32_t ring, uint16_t want)
{
    uint16_t u = 0;
    for (int i = 0; i < 1000 && (u = used_idx(vm, ring)) != want; i++)
        usleep(5000);
    cr_assert_eq(u, want, "used index %u, expected %u", u, want);
}

static char console_out[64];
static atomic_size_t console_len;

static void capture(void *opaque, const void *data, size_t len)
{
    (void)opaque;
    size_t at = atomic_load(&console_len);
    if (at + len <= sizeof(console_out)) {
        memcpy(console_out + at, data, len);
        atomic_store(&console_len, at + len);
    }
}

Test(virtio_blk, slow_disk_does_not_stall_other_devices)
{
    hvt t;
    vq_vopen(&t);
    struct slow slow;
    slow_open(&t, &slow);
    char pa[64], pb[64];
    close(vq_make_disk(pa, 64 * 512));
    close(vq_make_disk(pb, 64 * 512));
    add_blk(&t, 0, pa); /* the slow one */
    add_blk(&t, 1, pb);
    hvc_virtio_console_options co = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
    co.mmio = (hvc_virtio_mmio){BASE + 0x400, IRQ + 2, 0};
    co.output_fn = capture;
    HVT_OK(hvc_virtio_console_create(t.vm, &co, NULL));
    struct script s = {.n = 0};
    init_dev(&s, 0, 1);
    init_dev(&s, 1, 1);
    init_dev(&s, 2, 2);
    int st0 = r32(&s, 0, STATUS), st1 = r32(&s, 1, STATUS),
        st2 = r32(&s, 2, STATUS);
    vq_run(&t, &s);
    cr_assert_eq(s.ops[st0].value, 0xf);
    cr_assert_eq(s.ops[st1].value, 0xf);
    cr_assert_eq(s.ops[st2].value, 0xf);

    start_slow_read(&t, &slow);

    /* the other disk: a write and a read back, each notified and waited
     * for by the guest */
    uint8_t data[512];
    memset(data, 0x3c, sizeof(data));
    HVT_OK(hvc_vm_write(t.vm, DBUF(1) + 0x1000, data, sizeof(data)));
    blk_req(&t, 1, 0, BLK_OUT, 7, DBUF(1) + 0x1000, 512);
    blk_req(&t, 1, 1, BLK_IN, 7, DBUF(1) + 0x2000, 512);
    publish(&t, RING(1), 0, 0);
    s.n = 0;
    w32(&s, 1, NOTIFY, 0);
    vq_wait16(&s, RING(1) + 0x2000 + 2, 1);
    double t0 = now_s();
    vq_run(&t, &s);
    publish(&t, RING(1), 1, 3);
    s.n = 0;
    w32(&s, 1, NOTIFY, 0);
    vq_wait16(&s, RING(1) + 0x2000 + 2, 2);
    vq_run(&t, &s);
    double blk_s = now_s() - t0;
    cr_assert_eq(blk_status(t.vm, 1, 0), 0);
    cr_assert_eq(blk_status(t.vm, 1, 1), 0);
    uint8_t back[512];
    HVT_OK(hvc_vm_read(t.vm, DBUF(1) + 0x2000, back, 512));
    cr_assert_arr_eq(back, data, 512);

    /* the console, whose transmit queue the event thread serves */
    HVT_OK(hvc_vm_write(t.vm, DBUF(2), "ping", 4));
    put_desc(&t, RING(2) + 0x4000, 0, (struct desc){DBUF(2), 4, 0, 0});
    publish(&t, RING(2) + 0x4000, 0, 0);
    s.n = 0;
    w32(&s, 2, NOTIFY, 1);
    vq_wait16(&s, RING(2) + 0x4000 + 0x2000 + 2, 1);
    t0 = now_s();
    vq_run(&t, &s);
    double con_s = now_s() - t0;
    cr_assert_eq(atomic_load(&console_len), 4);
    cr_assert_arr_eq(console_out, "ping", 4);

    /* the slow device's own registers answer: no lock is held across
     * its I/O */
    s.n = 0;
    int st = r32(&s, 0, STATUS);
    r32(&s, 0, ISR);
    t0 = now_s();
    vq_run(&t, &s);
    double reg_s = now_s() - t0;
    cr_assert_eq(s.ops[st].value, 0xf);
    cr_log_info("while one disk blocks: two requests on the other disk took "
                "%.1f ms, a console transmit %.1f ms, register reads of the "
                "blocked disk %.1f ms",
                blk_s * 1e3, con_s * 1e3, reg_s * 1e3);
    cr_assert_lt(blk_s + con_s + reg_s, 2.0, "other devices were stalled");

    cr_assert_eq(used_idx(t.vm, RING(0)), 0, "the slow read is still blocked");
    atomic_store(&slow.release, 1);
    wait_used(t.vm, RING(0), 1);
    cr_assert_eq(blk_status(t.vm, 0, 0), 0);
    uint8_t got[512];
    HVT_OK(hvc_vm_read(t.vm, SLOW_GPA, got, sizeof(got)));
    for (int i = 0; i < 512; i++)
        cr_assert_eq(got[i], 3, "byte %d of sector 3 is 0x%x", i, got[i]);
    vq_vclose(&t);
    slow_close(&slow);
    unlink(pa);
    unlink(pb);
}

struct pauser {
    hvc_vm *vm;
    atomic_int done;
    int r;
};

static void *do_pause(void *arg)
{
    struct pauser *p = arg;
    p->r = hvc_vm_pause(p->vm);
    atomic_store(&p->done, 1);
    return NULL;
}

static const char *restore_disk;

static int attach(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)opaque, (void)user, (void)len;
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.path = restore_disk;
    return hvc_virtio_blk_create(vm, &o, NULL);
}

/* A pause while a request is blocked returns once it completed; the
 * request queued behind it is neither started nor lost: the saved state
 * has the first completed and the second still available, and the
 * restored device serves the second exactly once. */
Test(virtio_blk, pause_and_save_with_a_blocked_request)
{
    hvt t;
    vq_vopen(&t);
    struct slow slow;
    slow_open(&t, &slow);
    char path[64];
    close(vq_make_disk(path, 64 * 512));
    add_blk(&t, 0, path);
    struct script s = {.n = 0};
    init_dev(&s, 0, 1);
    vq_run(&t, &s);
    start_slow_read(&t, &slow);
    /* queued behind the blocked read, never notified on its own */
    uint8_t data[512];
    memset(data, 0xb5, sizeof(data));
    HVT_OK(hvc_vm_write(t.vm, DBUF(0) + 0x1000, data, sizeof(data)));
    blk_req(&t, 0, 1, BLK_OUT, 9, DBUF(0) + 0x1000, 512);
    publish(&t, RING(0), 1, 3);

    struct pauser p = {.vm = t.vm};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, do_pause, &p), 0);
    usleep(300000);
    cr_assert_eq(atomic_load(&p.done), 0,
                 "the pause returned with a request half-done");
    atomic_store(&slow.release, 1);
    pthread_join(th, NULL);
    HVT_OK(p.r);
    cr_assert_eq(used_idx(t.vm, RING(0)), 1, "the blocked read completed");
    cr_assert_eq(blk_status(t.vm, 0, 0), 0);
    usleep(50000);
    cr_assert_eq(used_idx(t.vm, RING(0)), 1, "nothing runs while paused");

    FILE *f = tmpfile();
    cr_assert_not_null(f);
    HVT_OK(hvc_vm_save_fd(t.vm, fileno(f), NULL));
    /* destroyed while paused: the write behind the read never runs here */
    vq_vclose(&t);
    slow_close(&slow);
    int fd = open(path, O_RDONLY);
    uint8_t disk[512];
    cr_assert_eq(pread(fd, disk, 512, 9 * 512), 512);
    cr_assert_eq(disk[0], 9, "the queued write ran before the save");

    hvt u = {0};
    HVT_OK(hvc_hypervisor_open("kvm", &u.hv));
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = attach;
    restore_disk = path;
    cr_assert_eq(lseek(fileno(f), 0, SEEK_SET), 0);
    HVT_OK(hvc_vm_restore_fd(u.hv, fileno(f), &ro, &u.vm));
    fclose(f);
    script_vm = u.vm;
    HVT_OK(hvc_vm_get_vcpu(u.vm, 0, &script_vcpu));
    uint8_t got[512];
    HVT_OK(hvc_vm_read(u.vm, SLOW_GPA, got, sizeof(got)));
    cr_assert_eq(got[0], 3, "the completed read is in the saved memory");
    cr_assert_eq(got[511], 3);
    wait_used(u.vm, RING(0), 2); /* the load looks at the queue */
    cr_assert_eq(blk_status(u.vm, 0, 0), 0);
    cr_assert_eq(blk_status(u.vm, 0, 1), 0);
    cr_assert_eq(pread(fd, disk, 512, 9 * 512), 512);
    cr_assert_arr_eq(disk, data, 512, "the restored device did the write");
    usleep(50000);
    cr_assert_eq(used_idx(u.vm, RING(0)), 2, "served exactly once");
    /* and it goes on through a guest notify */
    blk_req(&u, 0, 1, BLK_IN, 9, DBUF(0) + 0x3000, 512);
    publish(&u, RING(0), 2, 3);
    s.n = 0;
    w32(&s, 0, NOTIFY, 0);
    vq_wait16(&s, RING(0) + 0x2000 + 2, 3);
    vq_run(&u, &s);
    cr_assert_eq(blk_status(u.vm, 0, 1), 0);
    HVT_OK(hvc_vm_read(u.vm, DBUF(0) + 0x3000, got, 512));
    cr_assert_arr_eq(got, data, 512);
    close(fd);
    vq_vclose(&u);
    unlink(path);
}

struct runner {
    hvc_vm *vm;
    struct script *s;
    atomic_int done;
    int port;
};

/* Runs a script on the script vCPU without Criterion asserts (for a
 * thread of its own); port is PORT_DONE's or -1. */
static void *run_raw(void *arg)
{
    struct runner *r = arg;
    struct script *s = r->s;
    s->ops[s->n++] = (struct op){0, 0, 0, OP_END};
    r->port = -1;
    if (hvc_vm_write(r->vm, DATA_IN, s->ops, s->n * sizeof(struct op)) == 0) {
        hvc_vcpu_mode_options m = HVC_VCPU_MODE_OPTIONS_INIT;
        m.mode = HVC_X86_MODE_LONG64;
        m.entry = GUEST_LOAD;
        m.stack = GUEST_STACK;
        m.tables_addr = GUEST_TABLES;
        const hvc_exit *e;
        if (hvc_vcpu_set_mode(script_vcpu, &m) == 0 &&
            hvc_vcpu_run(script_vcpu, &e) == 0 && e->reason == HVC_EXIT_PIO &&
            e->u.io.port == PORT_DONE)
            r->port = e->u.io.port;
    }
    atomic_store(&r->done, 1);
    return NULL;
}

/* A driver reset while a request is blocked: the reset waits for it, the
 * request is dropped (the rings it came from are gone), and the device
 * serves the driver's new rings afterwards. */
Test(virtio_blk, reset_with_a_blocked_request)
{
    hvt t;
    vq_vopen(&t);
    struct slow slow;
    slow_open(&t, &slow);
    char path[64];
    close(vq_make_disk(path, 64 * 512));
    add_blk(&t, 0, path);
    struct script s = {.n = 0};
    init_dev(&s, 0, 1);
    vq_run(&t, &s);
    start_slow_read(&t, &slow);

    s.n = 0;
    w32(&s, 0, STATUS, 0);
    int st = r32(&s, 0, STATUS);
    struct runner r = {.vm = t.vm, .s = &s};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_raw, &r), 0);
    usleep(200000);
    cr_assert_eq(atomic_load(&r.done), 0,
                 "the reset returned while the old request still wrote "
                 "into guest memory");
    atomic_store(&slow.release, 1);
    pthread_join(th, NULL);
    cr_assert_eq(r.port, PORT_DONE);
    cr_assert_eq(s.ops[st].value, 0, "status reads 0 after the reset");
    usleep(50000);
    cr_assert_eq(used_idx(t.vm, RING(0)), 0, "the dropped request was pushed");

    memset(hvc_memory_region_hva(t.ram) + RING(0) + 0x1000, 0, 0x2000);
    s.n = 0;
    init_dev(&s, 0, 1);
    vq_run(&t, &s);
    blk_req(&t, 0, 1, BLK_IN, 5, DBUF(0) + 0x1000, 512);
    publish(&t, RING(0), 0, 3);
    s.n = 0;
    w32(&s, 0, NOTIFY, 0);
    vq_wait16(&s, RING(0) + 0x2000 + 2, 1);
    vq_run(&t, &s);
    cr_assert_eq(blk_status(t.vm, 0, 1), 0);
    uint8_t b;
    HVT_OK(hvc_vm_read(t.vm, DBUF(0) + 0x1000, &b, 1));
    cr_assert_eq(b, 5);
    vq_vclose(&t);
    slow_close(&slow);
    unlink(path);
}

/* Removing the device, and destroying the VM, while a request is blocked:
 * each waits for the request and joins the worker. */
Test(virtio_blk, remove_and_destroy_with_a_blocked_request)
{
    for (int destroy = 0; destroy <= 1; destroy++) {
        hvt t;
        vq_vopen(&t);
        struct slow slow;
        slow_open(&t, &slow);
        char path[64];
        close(vq_make_disk(path, 64 * 512));
        hvc_device *dev = add_blk(&t, 0, path);
        struct script s = {.n = 0};
        init_dev(&s, 0, 1);
        vq_run(&t, &s);
        start_slow_read(&t, &slow);
        slow.deadline = now_s() + 0.2; /* fills the page by itself then */
        double t0 = now_s();
        if (destroy)
            vq_vclose(&t);
        else
            HVT_OK(hvc_vm_remove_device(t.vm, dev));
        double took = now_s() - t0;
        cr_assert_geq(took, 0.1, "%s returned with the request in flight",
                      destroy ? "destroy" : "remove");
        if (!destroy)
            vq_vclose(&t);
        slow_close(&slow);
        unlink(path);
    }
}

struct grant_call {
    hvc_device *dev;
    hvc_memory_grant g[2];
    atomic_int done;
};

static void *narrow(void *arg)
{
    struct grant_call *c = arg;
    HVT_OK(hvc_device_set_grants(c->dev, c->g, 2));
    atomic_store(&c->done, 1);
    return NULL;
}

/* Narrowing a device's grants while its worker is moving data for a
 * request translated under the old ones waits for that request, so once
 * the call returns nothing reaches memory the new grants leave out. */
Test(virtio_blk, narrowing_grants_waits_for_a_blocked_request)
{
    hvt t;
    vq_vopen(&t);
    struct slow slow;
    slow_open(&t, &slow);
    char path[64];
    close(vq_make_disk(path, 64 * 512));
    hvc_device *dev = add_blk(&t, 0, path);
    struct script s = {.n = 0};
    init_dev(&s, 0, 1);
    vq_run(&t, &s);
    start_slow_read(&t, &slow);

    /* the rings and the request headers, not the slow memory */
    struct grant_call c = {.dev = dev,
                           .g = {{RING(0), 0x10000}, {DBUF(0), 0x10000}}};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, narrow, &c), 0);
    usleep(200000);
    cr_assert_eq(atomic_load(&c.done), 0,
                 "the grants changed while a request translated under the "
                 "old ones still wrote into guest memory");
    atomic_store(&slow.release, 1);
    pthread_join(th, NULL);
    wait_used(t.vm, RING(0), 1);
    cr_assert_eq(blk_status(t.vm, 0, 0), 0, "the old request completes");

    /* the next request into the slow memory is refused */
    blk_req(&t, 0, 1, BLK_IN, 5, SLOW_GPA + 0x1000, 512);
    publish(&t, RING(0), 1, 3);
    notify(&t, 0, 0);
    wait_used(t.vm, RING(0), 2);
    cr_assert_eq(blk_status(t.vm, 0, 1), 1, "IOERR outside the grants");
    uint64_t n = 0;
    HVT_OK(hvc_device_grant_refusals(dev, &n));
    cr_assert_geq(n, 1);
    vq_vclose(&t);
    slow_close(&slow);
    unlink(path);
}
