/* A malicious guest against virtio devices, through the public API on real
 * VMs (the rest is in test_malicious_guest.c and test_malicious_chains.c):
 * a notify storm on virtio-blk, device writes into read-only memory, and
 * random virtio-mmio register and live ring rewrites. Each case checks that
 * the VMM survives, that the device reports the abuse, that a reset brings
 * it back, and that the disk image's hash is unchanged. */
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

/* A notify storm: the guest rings virtio-blk's doorbell 10^6 times with
 * requests in the ring, then with the device failed. Every request is
 * served once, the VMM pauses and resumes meanwhile, and the image keeps
 * its hash. */
#define STORM_NOTIFIES 1000000ull

static void notify_storm(hvt *t, uint64_t count)
{
    uint64_t in[3] = {count, BASE + R_QUEUE_NOTIFY, 0};
    hvt_load(t->vm, "notify_storm");
    HVT_OK(hvc_vm_write(t->vm, DATA_IN, in, sizeof(in)));
    run_mode(script_vcpu);
    cr_assert_eq(hvt_run_done(script_vcpu), 0x5c);
    hvt_load(t->vm, "mmio_script");
}

Test(malicious_guest, blk_notify_storm)
{
    hvt t;
    struct target g;
    log_start();
    target_open(&t, &g, "virtio-blk");
    uint64_t hash0 = file_hash(g.path, NULL);
    /* two reads published, not notified: the storm's first ring serves
     * them, the rest find nothing */
    vq_blk_request(&t, 0, T_IN, 5, 0x300000, 512);
    vq_blk_request(&t, 1, T_IN, 6, 0x301000, 512);
    vq_publish(&t, 0, 0, 0);
    vq_publish(&t, 0, 1, 3);
    double t0 = now_s();
    notify_storm(&t, STORM_NOTIFIES);
    double secs = now_s() - t0;
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    struct script s = {.n = 0};
    vq_wait16(&s, USED + 2, 2);
    vq_run(&t, &s);
    cr_assert_eq(vq_blk_status(&t, 0), 0);
    cr_assert_eq(vq_blk_status(&t, 1), 0);
    uint8_t a, b;
    HVT_OK(hvc_vm_read(t.vm, 0x300000, &a, 1));
    HVT_OK(hvc_vm_read(t.vm, 0x301000, &b, 1));
    cr_assert(a == 5 && b == 6, "read back %u and %u", a, b);
    /* nothing more was used: each request once */
    usleep(20000);
    uint16_t used;
    HVT_OK(hvc_vm_read(t.vm, USED + 2, &used, 2));
    cr_assert_eq(used, 2, "%u used elements for 2 requests", used);
    cr_log_info("%llu notifies in %.2f s", (unsigned long long)STORM_NOTIFIES,
                secs);

    /* the device failed by a bad chain: the storm finds it dead */
    put(&t, 0, 6, RAM_END, 16, 0, 0);
    vq_publish(&t, 0, 2, 6);
    notify_storm(&t, STORM_NOTIFIES / 4);
    cr_assert(vq_status_reg(&t) & ST_NEEDS_RESET);
    char msg[512];
    cr_assert_eq(log_take(msg, sizeof(msg)), 1, "last: %s", msg);
    memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
    vq_init(&t, 1);
    good_request(&t, &g);
    cr_assert_eq(file_hash(g.path, NULL), hash0, "the image changed");
    target_close(&t, &g);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
}

/* Read-only memory (a ROM: HVC_MEMORY_READONLY) is no target for a
 * device's writes: a writable buffer there fails the device like one
 * outside RAM, and the ROM keeps its bytes. With the caller's ROM mapped
 * PROT_READ on the host, a write through a host pointer would kill the
 * VMM instead. */
#define ROM_BASE 0x800000u
#define ROM_LEN 0x10000u

static void rom_case(const char *type, bool caller_ro)
{
    hvt t;
    struct target g;
    log_start();
    target_open(&t, &g, type);
    uint8_t *img = NULL;
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.flags = HVC_MEMORY_READONLY;
    mo.guest_addr = ROM_BASE;
    mo.length = ROM_LEN;
    uint8_t pattern[ROM_LEN];
    for (uint32_t i = 0; i < ROM_LEN; i++)
        pattern[i] = (uint8_t)(i * 13 + 1);
    hvc_memory_region *rom;
    if (caller_ro) {
        img = mmap(NULL, ROM_LEN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(img, MAP_FAILED);
        memcpy(img, pattern, ROM_LEN);
        cr_assert_eq(mprotect(img, ROM_LEN, PROT_READ), 0);
        mo.host_addr = img;
        HVT_OK(hvc_vm_add_memory(t.vm, &mo, &rom));
    } else {
        HVT_OK(hvc_vm_add_memory(t.vm, &mo, &rom));
        memcpy(hvc_memory_region_hva(rom), pattern, ROM_LEN);
    }
    uint64_t hash0 = g.path[0] ? file_hash(g.path, NULL) : 0;
    const uint32_t qoff = g.queue * QOFF;
    if (strcmp(type, "virtio-blk") == 0) {
        /* a read of sector 9 into the ROM, its status byte there too */
        vq_blk_request(&t, 0, T_IN, 9, ROM_BASE + 0x1000, 512);
        put(&t, 0, 2, ROM_BASE + 0x80, 1, F_WRITE, 0);
    } else {
        put(&t, qoff, 0, ROM_BASE + 0x2000, 256, F_WRITE, 0);
    }
    vq_publish(&t, qoff, 0, 0);
    if (g.queue == 0 && g.in[0] > 0)
        cr_assert_eq(write(g.in[1], "rom", 3), 3);
    struct script s = {.n = 0};
    vq_w32(&s, R_QUEUE_NOTIFY, g.queue);
    vq_run(&t, &s);
    uint32_t st = 0;
    for (int i = 0; i < 4000 && !(st & ST_NEEDS_RESET); i++) {
        usleep(2500);
        st = vq_status_reg(&t);
    }
    cr_assert(st & ST_NEEDS_RESET,
              "%s: a writable buffer in ROM was taken "
              "(status 0x%x)",
              type, st);
    uint16_t used;
    HVT_OK(hvc_vm_read(t.vm, USED + qoff + 2, &used, 2));
    cr_assert_eq(used, 0, "%s: %u buffers used", type, used);
    const uint8_t *now = caller_ro ? img : hvc_memory_region_hva(rom);
    cr_assert_arr_eq(now, pattern, ROM_LEN, "%s: the ROM changed", type);
    char msg[512];
    cr_assert_eq(log_take(msg, sizeof(msg)), 1, "%s: last: %s", type, msg);
    memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
    vq_init_features(&t, g.nqueues, g.features);
    good_request(&t, &g);
    if (g.path[0])
        cr_assert_eq(file_hash(g.path, NULL), hash0, "the image changed");
    target_close(&t, &g);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
    if (img)
        munmap(img, ROM_LEN);
}

/* A used ring in ROM is refused when the queue is made ready. */
static void rom_used_ring(bool caller_ro)
{
    hvt t;
    struct target g;
    target_open(&t, &g, "virtio-rng");
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.flags = HVC_MEMORY_READONLY;
    mo.guest_addr = ROM_BASE;
    mo.length = ROM_LEN;
    uint8_t *img = NULL;
    if (caller_ro) {
        img =
            mmap(NULL, ROM_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(img, MAP_FAILED);
        mo.host_addr = img;
    }
    hvc_memory_region *rom;
    HVT_OK(hvc_vm_add_memory(t.vm, &mo, &rom));
    struct script s = {.n = 0};
    vq_w32(&s, R_STATUS, 0);
    vq_w32(&s, R_STATUS, 3);
    vq_w32(&s, 0x038, QSIZE);
    vq_w32(&s, 0x080, DESC);
    vq_w32(&s, 0x090, AVAIL);
    vq_w32(&s, 0x0a0, ROM_BASE);
    vq_w32(&s, 0x044, 1);
    int ready = vq_r32(&s, 0x044);
    int st = vq_r32(&s, R_STATUS);
    vq_run(&t, &s);
    cr_assert_eq(s.ops[ready].value, 0,
                 "a queue with its used ring in ROM "
                 "became ready");
    cr_assert(s.ops[st].value & ST_NEEDS_RESET);
    memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
    vq_init_features(&t, g.nqueues, g.features);
    good_request(&t, &g);
    target_close(&t, &g);
    if (img)
        munmap(img, ROM_LEN);
}

Test(malicious_guest, device_writes_into_rom_fail)
{
    rom_used_ring(false);
    rom_used_ring(true);
    static const char *const types[] = {"virtio-blk", "virtio-rng",
                                        "virtio-console-rx"};
    for (int k = 0; k < 3; k++) {
        rom_case(types[k], false);
        rom_case(types[k], true);
    }
}

/* ------------------------------------------------------------------ */
/* 5. Random virtio-mmio register accesses with live queues.           */

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static const uint16_t mmio_regs[] = {
    0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034,
    0x038, 0x044, 0x050, 0x050, 0x050, 0x060, 0x064, 0x070, 0x070, 0x080,
    0x084, 0x090, 0x094, 0x0a0, 0x0a4, 0x0fc, 0x100, 0x108, 0x13c};

/* A value a hostile driver might write: a status, a size, an address in
 * the ring area or out of RAM, or noise. Addresses stay at or above
 * 0x200000: below are the script guest, its ops and its page tables,
 * which a read request the device honours could overwrite. */
static uint64_t hostile_value(uint64_t *s)
{
    uint64_t r = xs(s);
    switch (r % 16) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 0xf;
    case 3: return 0xb;
    case 4: return 0x4f;
    case 5: return QSIZE;
    case 6: return 256;
    case 7: return 0x8000;
    case 8: return 0xffffffffu;
    case 9: return DESC + (r >> 8) % 2 * QOFF;
    case 10: return AVAIL + (r >> 8) % 2 * QOFF;
    case 11: return USED + (r >> 8) % 2 * QOFF;
    case 12: return 0x200000 + (r >> 8) % 0x200000;
    case 13: return RAM_END - (r >> 8) % 64;
    default: return xs(s);
    }
}

/* One script of @n random accesses: registers of every size, and live
 * rewrites of the descriptor table and rings under the device. */
static void random_script(struct script *sc, uint64_t *s, int n)
{
    static const uint32_t sizes[] = {4, 4, 4, 4, 4, 1, 2, 8};
    sc->n = 0;
    for (int i = 0; i < n; i++) {
        uint64_t r = xs(s);
        struct op *o = &sc->ops[sc->n++];
        if (r % 8 == 0) { /* the rings, as the device reads them */
            uint64_t a = DESC + (xs(s) % (2 * QOFF)) / 8 * 8;
            *o = (struct op){a, hostile_value(s), r & 16 ? 8 : 2, OP_WRITE};
            continue;
        }
        uint64_t off =
            (r >> 8) % 4 ? mmio_regs[(r >> 16) %
                                     (sizeof(mmio_regs) / sizeof(mmio_regs[0]))]
                         : (r >> 16) % HVC_VIRTIO_MMIO_SIZE;
        uint32_t size = sizes[(r >> 32) % 8];
        off &= ~(uint64_t)(size - 1);
        *o = (struct op){BASE + off, hostile_value(s), size,
                         (r >> 40) % 4 ? OP_WRITE : OP_READ};
    }
}

#define REG_RUNS 300
#define REG_OPS 100

static void register_fuzz(const char *type, uint64_t seed)
{
    hvt t;
    struct target g;
    target_open(&t, &g, type);
    off_t size0 = 0, size1 = 0;
    uint64_t hash0 = g.path[0] ? file_hash(g.path, &size0) : 0;
    uint64_t s = seed;
    uint8_t rec[8192];
    size_t len;
    double t0 = now_s();
    for (int run = 0; run < REG_RUNS; run++) {
        /* every other run starts from a working device */
        if (run % 2 == 0) {
            memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
            vq_init_features(&t, g.nqueues, g.features);
        }
        struct script sc;
        random_script(&sc, &s, REG_OPS);
        vq_run(&t, &sc);
        /* the VMM's calls keep working, and the device's own state loads
         * back into it */
        HVT_OK(hvc_vm_pause(t.vm));
        HVT_OK(hvc_device_save_state(g.dev, rec, sizeof(rec), &len));
        HVT_OK(hvc_device_load_state(g.dev, rec, len));
        HVT_OK(hvc_vm_resume(t.vm));
    }
    double secs = now_s() - t0;
    /* a reset recovers it */
    memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
    vq_init_features(&t, g.nqueues, g.features);
    good_request(&t, &g);
    cr_log_info("%s: %d random register and ring accesses in %.2f s", type,
                REG_RUNS * REG_OPS, secs);
    if (g.path[0]) {
        /* random chains may have written to a writable image, but never
         * past its end, and never to a read-only one */
        uint64_t hash1 = file_hash(g.path, &size1);
        cr_assert_eq(size1, size0, "the image grew to %lld bytes",
                     (long long)size1);
        if (blk_flags & HVC_VIRTIO_BLK_READONLY)
            cr_assert_eq(hash1, hash0, "a read-only image changed");
        else if (hash1 != hash0)
            cr_log_info("random chains wrote to the writable image");
    }
    target_close(&t, &g);
}

Test(malicious_guest, blk_random_registers)
{
    register_fuzz("virtio-blk", 0x243f6a8885a308d3ull);
    register_fuzz("virtio-blk", 0x452821e638d01377ull);
}

Test(malicious_guest, blk_readonly_random_registers)
{
    blk_flags = HVC_VIRTIO_BLK_READONLY;
    register_fuzz("virtio-blk", 0xbe5466cf34e90c6cull);
    register_fuzz("virtio-blk", 0xc0ac29b7c97c50ddull);
}

Test(malicious_guest, rng_random_registers)
{
    register_fuzz("virtio-rng", 0x13198a2e03707344ull);
}

Test(malicious_guest, console_random_registers)
{
    register_fuzz("virtio-console", 0xa4093822299f31d0ull);
}
