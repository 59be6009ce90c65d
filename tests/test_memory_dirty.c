/* Dirty-page tracking of memory regions, with a real guest
 * (tests/guests/dirty64.S) writing known pages: the bitmap (with KVM's
 * INITIALLY_SET where the host has it), the dirty ring, the library's own
 * writes, and the errors. */
#include "hvtest.h"
#include "vqueue.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DGPA 0x10000000ull   /* the tracked region, identity-mapped */
#define DLEN (1024u * 1024u) /* 256 pages */
#define DPAGES (DLEN / HVC_PAGE_SIZE)

typedef struct dvm {
    hvt t;
    hvc_memory_region *r;
    hvc_vcpu *v;
} dvm;

static uint64_t caps(hvc_hypervisor *hv)
{
    uint64_t c = 0;
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_DIRTY_TRACKING, &c));
    return c;
}

/* A VM (with @p vm_flags) with RAM, the guest loaded, and a region of
 * @p len bytes at DGPA. A ring asked for of a backend without one
 * (HVC_CAP_DIRTY_TRACKING, whatever the backend's name): checks that
 * hvc_vm_create() refuses it by name, and returns false (the test ends
 * there, having tested that). */
static bool dvm_open(dvm *d, uint32_t vm_flags, uint64_t len)
{
    memset(d, 0, sizeof(*d));
    if (vm_flags & HVC_VM_DIRTY_RING) {
        hvt_require_kvm();
        hvc_hypervisor *hv;
        HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv));
        if (!(caps(hv) & HVC_DIRTY_RING)) {
            hvc_vm_options o = HVC_VM_OPTIONS_INIT;
            o.flags = vm_flags;
            hvc_vm *vm = NULL;
            HVT_ERR(hvc_vm_create(hv, &o, &vm), -ENOTSUP);
            cr_assert(strstr(hvc_last_error(), "HVC_VM_DIRTY_RING"), "%s",
                      hvc_last_error());
            cr_assert_null(vm);
            HVT_OK(hvc_hypervisor_close(hv));
            return false;
        }
        HVT_OK(hvc_hypervisor_close(hv));
    }
    hvt_open(&d->t, vm_flags);
    hvc_memory_options o = HVC_MEMORY_OPTIONS_INIT;
    o.guest_addr = DGPA;
    o.length = len;
    HVT_OK(hvc_vm_add_memory(d->t.vm, &o, &d->r));
    hvt_load(d->t.vm, "dirty64");
    d->v = hvt_vcpu(d->t.vm, 0, HVC_X86_MODE_LONG64, 0);
    return true;
}

/* Runs the guest once over the listed pages of the region. */
static void guest_writes(dvm *d, const uint32_t *pages, size_t n)
{
    uint64_t in[1 + 64];
    cr_assert_leq(n, 64);
    in[0] = n;
    for (size_t i = 0; i < n; i++)
        in[1 + i] = DGPA + (uint64_t)pages[i] * HVC_PAGE_SIZE + 8 * i;
    HVT_OK(hvc_vm_write(d->t.vm, DATA_IN, in, (1 + n) * sizeof(in[0])));
    cr_assert_eq(hvt_run_done(d->v), 0x5d);
}

/* Fetches and checks the set is exactly @p pages (or every page when
 * @p n is (size_t)-1). */
static void expect(dvm *d, const uint32_t *pages, size_t n, const char *when)
{
    size_t bytes = hvc_memory_dirty_bitmap_size(d->r);
    uint64_t pagecount = hvc_memory_region_length(d->r) / HVC_PAGE_SIZE;
    cr_assert_eq(bytes, (pagecount + 63) / 64 * 8);
    uint64_t *bm = malloc(bytes + 8);
    cr_assert_not_null(bm);
    memset(bm, 0xa5, bytes + 8);
    uint64_t count = 0;
    HVT_OK(hvc_memory_dirty_fetch(d->r, bm, bytes, &count));
    cr_assert_eq(bm[bytes / 8], 0xa5a5a5a5a5a5a5a5ull,
                 "%s: wrote past the bitmap", when);
    if (n == (size_t)-1) {
        uint64_t first_clean = pagecount;
        for (uint64_t p = 0; p < pagecount && first_clean == pagecount; p++)
            if (!(bm[p / 64] >> (p % 64) & 1))
                first_clean = p;
        cr_assert_eq(count, pagecount, "%s: first clean page %llu; ", when,
                     (unsigned long long)first_clean);
        cr_assert_eq(count, pagecount, "%s: %llu dirty, expected all %llu",
                     when, (unsigned long long)count,
                     (unsigned long long)pagecount);
        for (uint64_t p = 0; p < pagecount; p++)
            cr_assert(bm[p / 64] >> (p % 64) & 1, "%s: page %llu clean", when,
                      (unsigned long long)p);
    } else {
        cr_assert_eq(count, n, "%s: %llu dirty pages, expected %zu", when,
                     (unsigned long long)count, n);
        for (size_t i = 0; i < n; i++)
            cr_assert(bm[pages[i] / 64] >> (pages[i] % 64) & 1,
                      "%s: page %u is not reported", when, pages[i]);
    }
    free(bm);
}

static hvc_dirty_options clean_start(uint32_t mode)
{
    hvc_dirty_options o = HVC_DIRTY_OPTIONS_INIT;
    o.mode = mode;
    o.flags = HVC_DIRTY_START_CLEAN;
    return o;
}

static const uint32_t abc[] = {3, 70, 200};
static const uint32_t more[] = {0, 64, 255};

/* The sequence both modes must pass after a clean start. */
static void clean_sequence(dvm *d)
{
    expect(d, NULL, 0, "before the guest ran");
    guest_writes(d, abc, 3);
    expect(d, abc, 3, "after the guest wrote a, b, c");
    expect(d, NULL, 0, "second fetch");
    guest_writes(d, more, 3);
    expect(d, more, 3, "after more writes");
    uint32_t lib = 100;
    uint64_t x = 42;
    HVT_OK(
        hvc_vm_write(d->t.vm, DGPA + lib * HVC_PAGE_SIZE + 16, &x, sizeof(x)));
    expect(d, &lib, 1, "after hvc_vm_write");
    uint32_t two[] = {10, 11};
    HVT_OK(hvc_vm_write(d->t.vm, DGPA + 11 * HVC_PAGE_SIZE - 4, &x, sizeof(x)));
    expect(d, two, 2, "after an hvc_vm_write across a page boundary");
    uint8_t *hva = hvc_memory_region_hva(d->r);
    hva[150 * HVC_PAGE_SIZE] = 1;
    HVT_OK(hvc_vm_mark_dirty(d->t.vm, DGPA + 150 * HVC_PAGE_SIZE, 1));
    uint32_t marked = 150;
    expect(d, &marked, 1, "after hvc_vm_mark_dirty");
}

Test(memory_dirty, bitmap_first_fetch_reports_every_page)
{
    dvm d;
    dvm_open(&d, 0, DLEN);
    uint64_t c = caps(d.t.hv);
    cr_assert(c & HVC_DIRTY_BITMAP);
    cr_assert_eq(hvc_memory_dirty_mode(d.r), 0);
    HVT_OK(hvc_memory_dirty_start(d.r, NULL));
    uint32_t m = hvc_memory_dirty_mode(d.r);
    cr_assert(m & HVC_DIRTY_BITMAP, "mode 0x%x", m);
    cr_assert_eq(m & HVC_DIRTY_RING, 0);
    /* INITIALLY_SET is used exactly when the host offers it. */
    cr_assert_eq(m & (HVC_DIRTY_INITIALLY_SET | HVC_DIRTY_MANUAL_CLEAR),
                 c & (HVC_DIRTY_INITIALLY_SET | HVC_DIRTY_MANUAL_CLEAR),
                 "mode 0x%x, caps 0x%llx", m, (unsigned long long)c);
    guest_writes(&d, abc, 3);
    /* The first fetch reports every page (with INITIALLY_SET, because KVM
     * started the log all set; otherwise because the library did). */
    expect(&d, NULL, (size_t)-1, "first fetch");
    expect(&d, NULL, 0, "second fetch");
    guest_writes(&d, abc, 3);
    expect(&d, abc, 3, "after the guest wrote a, b, c");
    expect(&d, NULL, 0, "fetch after that");
    guest_writes(&d, more, 3);
    expect(&d, more, 3, "after more writes");
    HVT_OK(hvc_memory_dirty_stop(d.r));
    cr_assert_eq(hvc_memory_dirty_mode(d.r), 0);
    uint64_t bm[4];
    HVT_ERR(hvc_memory_dirty_fetch(d.r, bm, sizeof(bm), NULL), -ENOENT);
    /* Tracking again starts afresh. */
    HVT_OK(hvc_memory_dirty_start(d.r, NULL));
    expect(&d, NULL, (size_t)-1, "first fetch of the second start");
    hvt_close(&d.t);
}

Test(memory_dirty, bitmap_clean_start_reports_only_writes)
{
    dvm d;
    dvm_open(&d, 0, DLEN);
    hvc_dirty_options o = clean_start(HVC_DIRTY_BITMAP);
    HVT_OK(hvc_memory_dirty_start(d.r, &o));
    uint32_t m = hvc_memory_dirty_mode(d.r);
    cr_assert(m & HVC_DIRTY_BITMAP);
    cr_assert_eq(m & HVC_DIRTY_INITIALLY_SET, 0, "mode 0x%x", m);
    clean_sequence(&d);
    HVT_OK(hvc_memory_dirty_stop(d.r));
    hvt_close(&d.t);
}

Test(memory_dirty, ring_clean_start_reports_only_writes)
{
    dvm d;
    if (!dvm_open(&d, HVC_VM_DIRTY_RING, DLEN))
        return;
    hvc_dirty_options o = clean_start(HVC_DIRTY_AUTO);
    HVT_OK(hvc_memory_dirty_start(d.r, &o));
    cr_assert_eq(hvc_memory_dirty_mode(d.r), HVC_DIRTY_RING,
                 "the ring, never with INITIALLY_SET: mode 0x%x",
                 hvc_memory_dirty_mode(d.r));
    clean_sequence(&d);
    HVT_OK(hvc_memory_dirty_stop(d.r));
    hvt_close(&d.t);
}

Test(memory_dirty, ring_first_fetch_reports_every_page)
{
    dvm d;
    if (!dvm_open(&d, HVC_VM_DIRTY_RING, DLEN))
        return;
    hvc_dirty_options o = HVC_DIRTY_OPTIONS_INIT;
    o.mode = HVC_DIRTY_RING;
    HVT_OK(hvc_memory_dirty_start(d.r, &o));
    cr_assert_eq(hvc_memory_dirty_mode(d.r), HVC_DIRTY_RING);
    guest_writes(&d, abc, 3);
    expect(&d, NULL, (size_t)-1, "first fetch");
    guest_writes(&d, more, 3);
    expect(&d, more, 3, "after more writes");
    hvt_close(&d.t); /* destroying the VM while tracked */
}

/* More pages than a vCPU's ring holds (65536): the vCPU exits with its
 * ring full, the library empties it and the guest goes on. A host that
 * lets the ring overflow instead (this one: KVM over PVM) loses entries,
 * and the library then reports every tracked page. Either way no written
 * page goes unreported. */
#define BIG_LEN (288u << 20) /* 73728 pages */
Test(memory_dirty, ring_smaller_than_the_writes_loses_no_page)
{
    dvm d;
    if (!dvm_open(&d, HVC_VM_DIRTY_RING, BIG_LEN))
        return;
    hvc_dirty_options o = clean_start(HVC_DIRTY_RING);
    HVT_OK(hvc_memory_dirty_start(d.r, &o));
    hvt_load(d.t.vm, "touch64");
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(d.t.vm, 1, &v));
    hvc_vcpu_mode_options mo = HVC_VCPU_MODE_OPTIONS_INIT;
    mo.mode = HVC_X86_MODE_LONG64;
    mo.entry = GUEST_LOAD;
    mo.stack = GUEST_STACK;
    mo.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(v, &mo));
    uint64_t range[2] = {DGPA, BIG_LEN};
    HVT_OK(hvc_vm_write(d.t.vm, DATA_IN, range, sizeof(range)));
    cr_assert_eq(hvt_run_done(v), 0x7c);
    expect(&d, NULL, (size_t)-1, "after the guest wrote every page");
    expect(&d, NULL, 0, "second fetch");
    /* The VM goes on, and the ring with it (vCPU 0 runs dirty64). */
    hvt_load(d.t.vm, "dirty64");
    const uint32_t one[] = {5};
    guest_writes(&d, one, 1);
    expect(&d, one, 1, "after the guest ran again");
    hvt_close(&d.t);
}

Test(memory_dirty, bitmap_on_a_large_region)
{
    /* 1 GiB, never touched: with INITIALLY_SET the start write-protects
     * nothing and allocates nothing; the first fetch re-arms in chunks. */
    dvm d;
    dvm_open(&d, 0, 1ull << 30);
    HVT_OK(hvc_memory_dirty_start(d.r, NULL));
    expect(&d, NULL, (size_t)-1, "first fetch");
    guest_writes(&d, abc, 3);
    expect(&d, abc, 3, "after the guest wrote a, b, c");
    hvt_close(&d.t);
}

Test(memory_dirty, errors)
{
    dvm d;
    dvm_open(&d, 0, DLEN);
    uint64_t bm[4];
    HVT_ERR(hvc_memory_dirty_start(NULL, NULL), -EINVAL);
    HVT_ERR(hvc_memory_dirty_fetch(NULL, bm, sizeof(bm), NULL), -EINVAL);
    HVT_ERR(hvc_memory_dirty_fetch(d.r, NULL, sizeof(bm), NULL), -EINVAL);
    HVT_ERR(hvc_memory_dirty_stop(NULL), -EINVAL);
    HVT_ERR(hvc_vm_mark_dirty(NULL, DGPA, 1), -EINVAL);
    HVT_ERR(hvc_vm_mark_dirty(d.t.vm, DGPA + DLEN - 1, 2), -EFAULT);
    cr_assert_eq(hvc_memory_dirty_mode(NULL), 0);
    cr_assert_eq(hvc_memory_dirty_bitmap_size(NULL), 0);

    HVT_ERR(hvc_memory_dirty_fetch(d.r, bm, sizeof(bm), NULL), -ENOENT);
    HVT_ERR(hvc_memory_dirty_stop(d.r), -ENOENT);

    hvc_dirty_options o = HVC_DIRTY_OPTIONS_INIT;
    o.mode = 3;
    HVT_ERR(hvc_memory_dirty_start(d.r, &o), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "mode 3"), "%s", hvc_last_error());
    o = (hvc_dirty_options)HVC_DIRTY_OPTIONS_INIT;
    o.flags = 0x80;
    HVT_ERR(hvc_memory_dirty_start(d.r, &o), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "0x80"), "%s", hvc_last_error());
    o = (hvc_dirty_options)HVC_DIRTY_OPTIONS_INIT;
    o.size = 4;
    HVT_ERR(hvc_memory_dirty_start(d.r, &o), -EINVAL);
    o = (hvc_dirty_options)HVC_DIRTY_OPTIONS_INIT;
    o.mode = HVC_DIRTY_RING;
    HVT_ERR(hvc_memory_dirty_start(d.r, &o), -ENOTSUP);
    cr_assert(strstr(hvc_last_error(), "HVC_VM_DIRTY_RING"), "%s",
              hvc_last_error());
    cr_assert_eq(hvc_memory_dirty_mode(d.r), 0,
                 "a failed start tracks nothing");

    HVT_OK(hvc_memory_dirty_start(d.r, NULL));
    HVT_ERR(hvc_memory_dirty_start(d.r, NULL), -EALREADY);
    HVT_ERR(hvc_memory_dirty_fetch(d.r, bm, 16, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "needs 32"), "%s", hvc_last_error());

    /* Read-only memory: the guest cannot dirty it. */
    hvc_memory_options ro = HVC_MEMORY_OPTIONS_INIT;
    ro.guest_addr = DGPA + DLEN;
    ro.length = HVC_PAGE_SIZE;
    ro.flags = HVC_MEMORY_READONLY;
    hvc_memory_region *rr;
    HVT_OK(hvc_vm_add_memory(d.t.vm, &ro, &rr));
    HVT_ERR(hvc_memory_dirty_start(rr, NULL), -EINVAL);

    /* Removing a tracked region stops its tracking; its slot is reused. */
    HVT_OK(hvc_vm_remove_memory(d.t.vm, d.r));
    hvc_memory_options o2 = HVC_MEMORY_OPTIONS_INIT;
    o2.guest_addr = DGPA;
    o2.length = DLEN;
    HVT_OK(hvc_vm_add_memory(d.t.vm, &o2, &d.r));
    cr_assert_eq(hvc_memory_dirty_mode(d.r), 0);
    hvc_dirty_options c = clean_start(HVC_DIRTY_AUTO);
    HVT_OK(hvc_memory_dirty_start(d.r, &c));
    guest_writes(&d, abc, 3);
    expect(&d, abc, 3, "a region added in the slot of a removed one");
    hvt_close(&d.t);
}

Test(memory_dirty, ring_vm_refuses_the_bitmap)
{
    dvm d;
    if (!dvm_open(&d, HVC_VM_DIRTY_RING, DLEN))
        return;
    hvc_dirty_options o = HVC_DIRTY_OPTIONS_INIT;
    o.mode = HVC_DIRTY_BITMAP;
    HVT_ERR(hvc_memory_dirty_start(d.r, &o), -ENOTSUP);
    cr_assert(strstr(hvc_last_error(), "ring"), "%s", hvc_last_error());
    hvt_close(&d.t);
}

/* A device model writing guest memory through host pointers (virtio-rng
 * filling two buffers): the library marks the buffers and the used ring,
 * which KVM cannot see written. */
Test(memory_dirty, virtio_device_writes_are_tracked)
{
    hvt t;
    vq_vopen(&t);
    hvc_virtio_mmio m = {BASE, IRQ, 0};
    HVT_OK(hvc_virtio_rng_create(t.vm, &m, NULL, NULL));
    vq_init(&t, 1);
    vq_put_desc(&t, 0, 0, (struct desc){0x300000, 64, 2 | 1, 1});
    vq_put_desc(&t, 0, 1, (struct desc){0x305000, 64, 2, 0});
    vq_publish(&t, 0, 0, 0);
    hvc_dirty_options o = clean_start(HVC_DIRTY_AUTO);
    HVT_OK(hvc_memory_dirty_start(t.ram, &o));
    vq_notify_wait(&t, 0, 1);
    size_t bytes = hvc_memory_dirty_bitmap_size(t.ram);
    uint64_t *bm = calloc(1, bytes);
    cr_assert_not_null(bm);
    HVT_OK(hvc_memory_dirty_fetch(t.ram, bm, bytes, NULL));
    const uint32_t want[] = {0x300, 0x305, USED / HVC_PAGE_SIZE};
    for (size_t i = 0; i < 3; i++)
        cr_assert(bm[want[i] / 64] >> (want[i] % 64) & 1,
                  "page 0x%x, written by the device, is not reported", want[i]);
    cr_assert_eq(bm[0x301 / 64] >> (0x301 % 64) & 1, 0, "page 0x301 is");
    free(bm);
    vq_vclose(&t);
}

/* A live copy: the guest keeps rewriting 64 pages while the host fetches
 * and copies what each fetch reports; after the guest stops, one last
 * fetch and copy must leave the copy equal to guest memory. A page written
 * while a fetch re-arms it must never fall between two fetches. */
struct runner {
    hvc_vcpu *v;
    int rc;
    uint32_t reason;
    uint8_t status;
};

static void *run_guest(void *p)
{
    struct runner *r = p;
    const hvc_exit *e;
    r->rc = hvc_vcpu_run(r->v, &e);
    if (r->rc == 0) {
        r->reason = e->reason;
        r->status =
            e->reason == HVC_EXIT_PIO ? *(const uint8_t *)e->u.io.data : 0;
    }
    return NULL;
}

static void copy_reported(dvm *d, uint8_t *copy, uint64_t *bm, size_t bytes,
                          uint64_t *total)
{
    uint64_t n = 0;
    HVT_OK(hvc_memory_dirty_fetch(d->r, bm, bytes, &n));
    const uint8_t *hva = hvc_memory_region_hva(d->r);
    for (uint64_t p = 0; p < DPAGES; p++)
        if (bm[p / 64] >> (p % 64) & 1)
            memcpy(copy + p * HVC_PAGE_SIZE, hva + p * HVC_PAGE_SIZE,
                   HVC_PAGE_SIZE);
    *total += n;
}

static void live_copy(uint32_t vm_flags)
{
    dvm d;
    if (!dvm_open(&d, vm_flags, DLEN))
        return;
    hvt_load(d.t.vm, "dirtyloop64");
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(d.t.vm, 1, &v));
    hvc_vcpu_mode_options mo = HVC_VCPU_MODE_OPTIONS_INIT;
    mo.mode = HVC_X86_MODE_LONG64;
    mo.entry = GUEST_LOAD;
    mo.stack = GUEST_STACK;
    mo.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(v, &mo));
    uint64_t in[3] = {DGPA + 64 * HVC_PAGE_SIZE, 64, 0};
    HVT_OK(hvc_vm_write(d.t.vm, DATA_IN, in, sizeof(in)));

    HVT_OK(hvc_memory_dirty_start(d.r, NULL)); /* first fetch: all */
    uint8_t *copy = calloc(1, DLEN);
    size_t bytes = hvc_memory_dirty_bitmap_size(d.r);
    uint64_t *bm = calloc(1, bytes);
    cr_assert(copy && bm);
    struct runner r = {.v = v};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_guest, &r), 0);
    uint64_t total = 0;
    for (int round = 0; round < 200; round++) {
        copy_reported(&d, copy, bm, bytes, &total);
        usleep(500);
    }
    uint64_t stop = 1;
    HVT_OK(hvc_vm_write(d.t.vm, DATA_IN + 16, &stop, sizeof(stop)));
    pthread_join(th, NULL);
    cr_assert_eq(r.rc, 0, "run: %d", r.rc);
    cr_assert_eq(r.reason, HVC_EXIT_PIO);
    cr_assert_eq(r.status, 0x6c);
    copy_reported(&d, copy, bm, bytes, &total);
    const uint8_t *hva = hvc_memory_region_hva(d.r);
    for (uint64_t p = 0; p < DPAGES; p++)
        cr_assert(!memcmp(copy + p * HVC_PAGE_SIZE, hva + p * HVC_PAGE_SIZE,
                          HVC_PAGE_SIZE),
                  "page %llu of the copy differs from the guest's (pass "
                  "%llu in the copy, %llu in the guest)",
                  (unsigned long long)p,
                  (unsigned long long)*(uint64_t *)(copy + p * 4096),
                  (unsigned long long)*(uint64_t *)(hva + p * 4096));
    cr_assert_gt(total, DPAGES + 64, "the guest was seen writing: %llu",
                 (unsigned long long)total);
    cr_log_info("live copy: %llu pages reported over 201 fetches, guest at "
                "pass %llu",
                (unsigned long long)total,
                (unsigned long long)*(uint64_t *)(hva + 64 * 4096));
    free(copy);
    free(bm);
    hvt_close(&d.t);
}

Test(memory_dirty, bitmap_live_copy_converges)
{
    live_copy(0);
}

Test(memory_dirty, ring_live_copy_converges)
{
    live_copy(HVC_VM_DIRTY_RING);
}

/* The ring is the host's way of tracking, not guest state: a snapshot of a
 * ring VM restores (into a VM without one). */
Test(memory_dirty, ring_vm_snapshot_restores)
{
    dvm d;
    if (!dvm_open(&d, HVC_VM_DIRTY_RING, DLEN))
        return;
    HVT_OK(hvc_memory_dirty_start(d.r, NULL));
    guest_writes(&d, abc, 3);
    char path[] = "/tmp/hvc-dirty-ring-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    HVT_OK(hvc_vm_pause(d.t.vm));
    HVT_OK(hvc_snapshot_save(d.t.vm, path, NULL));
    hvc_vm *back;
    HVT_OK(hvc_snapshot_restore(d.t.hv, path, NULL, &back));
    unlink(path);
    uint64_t x;
    HVT_OK(hvc_vm_read(back, DGPA + 70 * HVC_PAGE_SIZE + 8, &x, sizeof(x)));
    cr_assert_eq(x, DGPA + 70 * HVC_PAGE_SIZE + 8);
    HVT_OK(hvc_vm_destroy(back));
    hvt_close(&d.t);
}
