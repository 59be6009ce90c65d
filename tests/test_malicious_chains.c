/* A malicious guest against virtio devices, through the public API on real
 * VMs (the rest is in test_malicious_guest.c and test_malicious_virtio.c):
 * every malformed descriptor chain against virtio-blk, virtio-rng and both
 * queues of virtio-console, and out-of-range and oversized disk requests.
 * Each case checks that the VMM survives, that the device reports the
 * abuse, that a reset brings it back, and that the disk image's hash is
 * unchanged. */
#include "malicious_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* 3. Malformed descriptor chains against blk, rng and console.        */

/* One malformed chain, published in the attacked queue (rings at qoff). */
struct bad_case {
    const char *name;
    void (*build)(hvt *t, uint32_t qoff);
};

static void loop2(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 16, 16, F_NEXT, 0);
    vq_publish(t, q, 0, 0);
}

static void self_loop(hvt *t, uint32_t q)
{
    put(t, q, 3, BUF, 16, F_NEXT, 3);
    vq_publish(t, q, 0, 3);
}

static void loop_writable(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 0x100, 16, F_NEXT | F_WRITE, 2);
    put(t, q, 2, BUF + 0x200, 16, F_NEXT | F_WRITE, 1);
    vq_publish(t, q, 0, 0);
}

static void ring_of_all(hvt *t, uint32_t q)
{
    for (uint16_t i = 0; i < QSIZE; i++)
        put(t, q, i, BUF + 0x20u * i, 16, F_NEXT, (uint16_t)((i + 1) % QSIZE));
    vq_publish(t, q, 0, 5);
}

static void far_outside_ram(hvt *t, uint32_t q)
{
    put(t, q, 0, 0x80000000ull, 16, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void at_end_of_ram(hvt *t, uint32_t q)
{
    put(t, q, 0, RAM_END, 1, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void in_mmio_window(hvt *t, uint32_t q)
{
    put(t, q, 0, BASE, 0x100, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void straddles_end(hvt *t, uint32_t q)
{
    put(t, q, 0, RAM_END - 0x800, 0x1000, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void straddles_end_by_one(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, RAM_END - 16, 17, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void second_straddles(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 0x100, 512, F_NEXT | F_WRITE, 2);
    put(t, q, 2, RAM_END - 0x10, 0x20, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void wraps(hvt *t, uint32_t q)
{
    put(t, q, 0, 0xfffffffffffff000ull, 0x2000, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void wraps_to_zero(hvt *t, uint32_t q)
{
    put(t, q, 0, 0xffffffffffffffffull, 2, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void huge_length(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 0xffffffffu, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void huge_writable_length(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, 0x1000, 0x80000000u, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void indirect(hvt *t, uint32_t q)
{
    /* a well-formed indirect table: refused all the same, as the feature
     * was never offered */
    struct desc tbl[2] = {{BUF, 16, F_NEXT, 1}, {BUF + 0x100, 16, F_WRITE, 0}};
    HVT_OK(hvc_vm_write(t->vm, 0x310000, tbl, sizeof(tbl)));
    put(t, q, 0, 0x310000, sizeof(tbl), F_INDIRECT, 0);
    vq_publish(t, q, 0, 0);
}

static void indirect_in_chain(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, 0x310000, 0xfffffff0u, F_INDIRECT | F_NEXT, 2);
    put(t, q, 2, BUF + 0x100, 16, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void head_past_queue(hvt *t, uint32_t q)
{
    vq_publish(t, q, 0, QSIZE);
}

static void head_ffff(hvt *t, uint32_t q)
{
    vq_publish(t, q, 0, 0xffff);
}

static void next_past_queue(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, QSIZE);
    vq_publish(t, q, 0, 0);
}

static void next_ffff_later(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 0x100, 16, F_NEXT | F_WRITE, 0xffff);
    vq_publish(t, q, 0, 0);
}

static void avail_far_ahead(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, 0, 0);
    uint16_t idx = 1000;
    HVT_OK(hvc_vm_write(t->vm, AVAIL + q + 2, &idx, 2));
}

static void avail_just_past(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, 0, 0);
    uint16_t idx = QSIZE + 1;
    HVT_OK(hvc_vm_write(t->vm, AVAIL + q + 2, &idx, 2));
}

static void avail_behind(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, 0, 0);
    uint16_t idx = 0xffff; /* 65535 entries ahead, i.e. one behind */
    HVT_OK(hvc_vm_write(t->vm, AVAIL + q + 2, &idx, 2));
}

static void readable_after_writable(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT | F_WRITE, 1);
    put(t, q, 1, BUF + 0x100, 16, 0, 0);
    vq_publish(t, q, 0, 0);
}

/* Chains well-formed for the transport that no virtio-blk request can be
 * (virtio 1.2 5.2.6: a 16-byte readable header, a writable status). */
static void blk_short_header(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 8, F_NEXT, 1);
    put(t, q, 1, BUF + 0x80, 1, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void blk_no_status(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 0x100, 512, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void blk_status_only(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF + 0x80, 1, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void blk_writable_header(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_WRITE | F_NEXT, 1);
    put(t, q, 1, BUF + 0x80, 1, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void blk_empty_buffers(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 0, F_NEXT, 1);
    put(t, q, 1, BUF + 0x80, 0, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static const struct bad_case blk_bad_cases[] = {
    {"header of 8 bytes", blk_short_header},
    {"no writable status byte", blk_no_status},
    {"only a status byte", blk_status_only},
    {"header in a writable buffer", blk_writable_header},
    {"zero-length header and status", blk_empty_buffers},
};

static const struct bad_case bad_cases[] = {
    {"two-descriptor loop", loop2},
    {"descriptor linked to itself", self_loop},
    {"loop in the writable part", loop_writable},
    {"chain through every descriptor and back", ring_of_all},
    {"buffer far outside RAM", far_outside_ram},
    {"buffer at the end of RAM", at_end_of_ram},
    {"buffer in the device's own MMIO window", in_mmio_window},
    {"buffer straddling the end of RAM", straddles_end},
    {"writable buffer one byte past the end", straddles_end_by_one},
    {"third buffer straddling the end", second_straddles},
    {"address + length wrapping", wraps},
    {"address + length wrapping to 0", wraps_to_zero},
    {"length 0xffffffff", huge_length},
    {"writable length 2 GiB", huge_writable_length},
    {"indirect descriptor (not negotiated)", indirect},
    {"indirect flag inside a chain", indirect_in_chain},
    {"head index = queue size", head_past_queue},
    {"head index 0xffff", head_ffff},
    {"next index = queue size", next_past_queue},
    {"next index 0xffff further down", next_ffff_later},
    {"available index 1000 ahead", avail_far_ahead},
    {"available index queue size + 1 ahead", avail_just_past},
    {"available index one behind", avail_behind},
    {"readable after writable", readable_after_writable},
};
#define NBAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

/* Publishes each malformed chain in turn, expects the device to fail and
 * say so, then resets it and expects a good request to work. */
static void attack_with(const char *type, const struct bad_case *cases,
                        size_t ncases)
{
    hvt t;
    struct target g;
    log_start();
    target_open(&t, &g, type);
    off_t size0 = 0, size1 = 0;
    uint64_t hash0 = g.path[0] ? file_hash(g.path, &size0) : 0;
    const uint32_t qoff = g.queue * QOFF;
    char msg[512];
    log_take(msg, sizeof(msg));
    for (size_t k = 0; k < ncases; k++) {
        const struct bad_case *c = &cases[k];
        c->build(&t, qoff);
        if (g.queue == 0 && g.in[0] > 0) /* the receiveq takes input */
            cr_assert_eq(write(g.in[1], "x", 1), 1);
        struct script s = {.n = 0};
        vq_w32(&s, R_QUEUE_NOTIFY, g.queue);
        vq_run(&t, &s);
        uint32_t st = 0;
        for (int i = 0; i < 4000 && !(st & ST_NEEDS_RESET); i++) {
            usleep(2500);
            st = vq_status_reg(&t);
        }
        cr_assert(st & ST_NEEDS_RESET, "%s, %s: no DEVICE_NEEDS_RESET (0x%x)",
                  type, c->name, st);
        cr_assert(st & (ISR_CONFIG << 16),
                  "%s, %s: no configuration interrupt (0x%x)", type, c->name,
                  st);
        uint16_t used;
        HVT_OK(hvc_vm_read(t.vm, USED + qoff + 2, &used, 2));
        cr_assert_eq(used, 0, "%s, %s: %u buffers used", type, c->name, used);
        unsigned nlog = log_take(msg, sizeof(msg));
        cr_assert_eq(nlog, 1, "%s, %s: %u errors logged (last: %s)", type,
                     c->name, nlog, msg);
        cr_assert(strstr(msg, hvc_device_name(g.dev)) &&
                      strstr(msg, "needs reset"),
                  "%s, %s: logged \"%s\"", type, c->name, msg);
        /* further notifies change nothing until the reset */
        s.n = 0;
        vq_w32(&s, R_QUEUE_NOTIFY, g.queue);
        vq_run(&t, &s);
        /* the VMM's calls keep working */
        HVT_OK(hvc_vm_pause(t.vm));
        uint8_t rec[8192];
        size_t len;
        HVT_OK(hvc_device_save_state(g.dev, rec, sizeof(rec), &len));
        HVT_OK(hvc_device_load_state(g.dev, rec, len));
        HVT_OK(hvc_vm_resume(t.vm));
        /* the driver resets the device and starts over; every other time
         * the VMM resets the VM's devices first */
        if (k % 2)
            HVT_OK(hvc_vm_reset_devices(t.vm));
        memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
        vq_init_features(&t, g.nqueues, g.features);
        good_request(&t, &g);
        cr_assert_eq(log_take(msg, sizeof(msg)), 0,
                     "%s, %s: an error logged after the reset: %s", type,
                     c->name, msg);
        if (g.path[0])
            cr_assert_eq(file_hash(g.path, &size1), hash0,
                         "%s, %s: the disk image changed", type, c->name);
        /* and again, so that the next case starts from empty rings */
        memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
        vq_init_features(&t, g.nqueues, g.features);
    }
    if (g.path[0])
        cr_assert_eq(size1, size0);
    target_close(&t, &g);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
}

static void attack(const char *type)
{
    attack_with(type, bad_cases, NBAD);
}

Test(malicious_guest, blk_malformed_chains)
{
    attack("virtio-blk");
    attack_with("virtio-blk", blk_bad_cases,
                sizeof(blk_bad_cases) / sizeof(blk_bad_cases[0]));
}

Test(malicious_guest, console_receive_malformed_chains)
{
    attack("virtio-console-rx");
}

Test(malicious_guest, rng_malformed_chains)
{
    attack("virtio-rng");
}

Test(malicious_guest, console_malformed_chains)
{
    attack("virtio-console");
}

/* ------------------------------------------------------------------ */
/* 4. Out-of-range disk requests: per-request errors, nothing touched. */

struct range_case {
    const char *name;
    uint32_t type;
    uint64_t sector; /* of the header; for discard/write-zeroes the
                        segment's */
    uint32_t len;    /* data bytes; for discard/write-zeroes num sectors */
    uint32_t copies; /* data descriptors of len bytes each (0: one) */
};

static const struct range_case range_cases[] = {
    {"read at the capacity", T_IN, DISK_SECTORS, 512, 0},
    {"read straddling the capacity", T_IN, DISK_SECTORS - 1, 1024, 0},
    {"read of a partial sector past the end", T_IN, DISK_SECTORS - 1, 513, 0},
    {"read of the whole disk and one sector", T_IN, 0, DISK_SECTORS * 512 + 512,
     0},
    {"read at sector 2^64-1", T_IN, UINT64_MAX, 512, 0},
    {"read at sector 2^55 (offset wraps to 0)", T_IN, 1ull << 55, 512, 0},
    {"read at 2^55-1 (offset wraps past 0)", T_IN, (1ull << 55) - 1, 1024, 0},
    {"read into 4 aliased 1 MiB buffers", T_IN, 0, 1u << 20, 4},
    {"write at the capacity", T_OUT, DISK_SECTORS, 512, 0},
    {"write straddling the capacity", T_OUT, DISK_SECTORS - 1, 1024, 0},
    {"write of a partial sector past the end", T_OUT, DISK_SECTORS - 1, 513, 0},
    {"write of the whole disk and one sector", T_OUT, 0,
     DISK_SECTORS * 512 + 512, 0},
    {"write at sector 2^64-4", T_OUT, UINT64_MAX - 3, 2048, 0},
    {"write at sector 2^55 (offset wraps to 0)", T_OUT, 1ull << 55, 512, 0},
    {"write at 2^55-1 (offset wraps past 0)", T_OUT, (1ull << 55) - 1, 1024, 0},
    {"write from 4 aliased 1 MiB buffers", T_OUT, 0, 1u << 20, 4},
    {"discard at the capacity", T_DISCARD, DISK_SECTORS, 1, 0},
    {"discard straddling the capacity", T_DISCARD, DISK_SECTORS - 2, 4, 0},
    {"discard of 2^32-1 sectors", T_DISCARD, 0, UINT32_MAX, 0},
    {"discard at 2^64-2 (end wraps)", T_DISCARD, UINT64_MAX - 1, 4, 0},
    {"discard at sector 2^55", T_DISCARD, 1ull << 55, 1, 0},
    {"write-zeroes at the capacity", T_WRITE_ZEROES, DISK_SECTORS, 1, 0},
    {"write-zeroes straddling the capacity", T_WRITE_ZEROES, DISK_SECTORS - 2,
     4, 0},
    {"write-zeroes of 2^32-1 sectors", T_WRITE_ZEROES, 0, UINT32_MAX, 0},
    {"write-zeroes of the whole disk and one", T_WRITE_ZEROES, 0,
     DISK_SECTORS + 1, 0},
    {"write-zeroes at 2^64-2 (end wraps)", T_WRITE_ZEROES, UINT64_MAX - 1, 4,
     0},
    {"write-zeroes at sector 2^55", T_WRITE_ZEROES, 1ull << 55, 1, 0},
};
#define NRANGE (sizeof(range_cases) / sizeof(range_cases[0]))

/* Builds request @c in descriptors 0.. and publishes it as entry @idx. */
static void range_request(hvt *t, const struct range_case *c, uint16_t idx)
{
    struct {
        uint32_t type, reserved;
        uint64_t sector;
    } h = {c->type, 0, c->type == T_IN || c->type == T_OUT ? c->sector : 0};
    HVT_OK(hvc_vm_write(t->vm, BUF, &h, sizeof(h)));
    uint8_t poison = 0xee;
    HVT_OK(hvc_vm_write(t->vm, BUF + 0x80, &poison, 1));
    uint16_t n = 0;
    put(t, 0, n, BUF, 16, F_NEXT, (uint16_t)(n + 1));
    n++;
    uint16_t w = c->type == T_IN ? F_WRITE : 0;
    if (c->type == T_DISCARD || c->type == T_WRITE_ZEROES) {
        struct {
            uint64_t sector;
            uint32_t num, flags;
        } seg = {c->sector, c->len, 0};
        HVT_OK(hvc_vm_write(t->vm, 0x2f0000, &seg, sizeof(seg)));
        put(t, 0, n, 0x2f0000, sizeof(seg), F_NEXT, (uint16_t)(n + 1));
        n++;
    } else {
        for (uint32_t k = 0; k < (c->copies ? c->copies : 1); k++, n++)
            put(t, 0, n, 0x300000, c->len, (uint16_t)(F_NEXT | w),
                (uint16_t)(n + 1));
    }
    put(t, 0, n, BUF + 0x80, 1, F_WRITE, 0);
    vq_publish(t, 0, idx, 0);
}

Test(malicious_guest, blk_out_of_range_requests)
{
    hvt t;
    struct target g;
    log_start();
    target_open(&t, &g, "virtio-blk");
    off_t size0, size1;
    uint64_t hash0 = file_hash(g.path, &size0);
    char msg[512];
    /* what the data buffers hold: a write that went through would show */
    uint8_t *ram = hvc_memory_region_hva(t.ram);
    memset(ram + 0x300000, 0xa5, 0x100000);
    for (size_t k = 0; k < NRANGE; k++) {
        const struct range_case *c = &range_cases[k];
        range_request(&t, c, (uint16_t)k);
        vq_notify_wait(&t, 0, (uint16_t)(k + 1));
        uint8_t st = vq_blk_status(&t, 0);
        cr_assert_eq(st, S_IOERR, "%s: status %u, expected IOERR", c->name, st);
        uint32_t used[2];
        HVT_OK(hvc_vm_read(t.vm, USED + 4 + 8 * (k % QSIZE), used, 8));
        cr_assert_eq(used[0], 0, "%s: used id %u", c->name, used[0]);
        cr_assert_eq(used[1], 1,
                     "%s: used length %u (a failed request "
                     "returns only its status)",
                     c->name, used[1]);
        uint32_t reg = vq_status_reg(&t);
        cr_assert_eq(reg & 0xff, 0xf, "%s: device status 0x%x", c->name, reg);
        cr_assert_eq(file_hash(g.path, &size1), hash0,
                     "%s: the disk image changed", c->name);
        cr_assert_eq(size1, size0, "%s: the image is %lld bytes", c->name,
                     (long long)size1);
    }
    cr_assert_eq(log_take(msg, sizeof(msg)), 0, "logged: %s", msg);
    /* a read buffer is left as it was: 0xa5, nothing read into it */
    cr_assert(ram[0x300000] == 0xa5 && ram[0x3fffff] == 0xa5,
              "a failed read wrote into its buffer");
    /* good requests on the same ring, then after a reset */
    vq_blk_request(&t, 0, T_IN, DISK_SECTORS - 1, 0x300000, 512);
    vq_publish(&t, 0, NRANGE, 0);
    vq_notify_wait(&t, 0, NRANGE + 1);
    cr_assert_eq(vq_blk_status(&t, 0), 0);
    cr_assert_eq(ram[0x300000], DISK_SECTORS - 1);
    memset(ram + DESC, 0, 2 * QOFF);
    vq_init_features(&t, 1, g.features);
    good_request(&t, &g);
    cr_assert_eq(file_hash(g.path, NULL), hash0);
    target_close(&t, &g);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
}

/* Discard and write-zeroes with more segments than the device's limit
 * (max_discard_seg and max_write_zeroes_seg are 1): a hostile guest could
 * otherwise hand the worker millions of segments, one system call each,
 * and every pause, save or reset waits for that request to end. */
Test(malicious_guest, blk_too_many_discard_segments)
{
    hvt t;
    struct target g;
    target_open(&t, &g, "virtio-blk");
    off_t size0, size1;
    uint64_t hash0 = file_hash(g.path, &size0);
    uint8_t *ram = hvc_memory_region_hva(t.ram);
    static const uint32_t types[] = {T_DISCARD, T_WRITE_ZEROES};
    for (uint16_t k = 0; k < 4; k++) {
        uint32_t type = types[k % 2];
        struct {
            uint32_t type, reserved;
            uint64_t sector;
        } h = {type, 0, 0};
        HVT_OK(hvc_vm_write(t.vm, BUF, &h, sizeof(h)));
        put(&t, 0, 0, BUF, 16, F_NEXT, 1);
        uint16_t n = 1;
        if (k < 2) {
            /* two good segments: sectors 1 and 2 */
            struct {
                uint64_t sector;
                uint32_t num, flags;
            } seg[2] = {{1, 1, 0}, {2, 1, 0}};
            HVT_OK(hvc_vm_write(t.vm, 0x2f0000, seg, sizeof(seg)));
            put(&t, 0, n, 0x2f0000, sizeof(seg), F_NEXT, 2);
            n++;
        } else {
            /* six aliased 1 MiB tables of sector-0 segments: 393216 */
            memset(ram + 0x300000, 0, 0x100000);
            for (; n < 7; n++)
                put(&t, 0, n, 0x300000, 0x100000, F_NEXT, (uint16_t)(n + 1));
        }
        put(&t, 0, n, BUF + 0x80, 1, F_WRITE, 0);
        vq_publish(&t, 0, k, 0);
        double t0 = now_s();
        vq_notify_wait(&t, 0, (uint16_t)(k + 1));
        double served = now_s() - t0;
        HVT_OK(hvc_vm_pause(t.vm));
        HVT_OK(hvc_vm_resume(t.vm));
        cr_assert_eq(
            vq_blk_status(&t, 0), 2, "%s with %s: status %u, expected UNSUPP",
            type == T_DISCARD ? "discard" : "write-zeroes",
            k < 2 ? "two segments" : "393216 segments", vq_blk_status(&t, 0));
        cr_assert_lt(served, 10.0, "the request took %.1f s", served);
        cr_assert_eq(file_hash(g.path, &size1), hash0, "the image changed");
    }
    cr_assert_eq(size1, size0);
    memset(ram + DESC, 0, 2 * QOFF);
    vq_init_features(&t, 1, g.features);
    good_request(&t, &g);
    target_close(&t, &g);
}
