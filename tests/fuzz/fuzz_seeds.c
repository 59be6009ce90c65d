/* Seeds for the fuzz targets other than fuzz_stream (whose seeds
 * make_seeds.c writes): OUTDIR/<target>/seed-<name>.bin, each a
 * well-formed input in the target's own input format (see the comment at
 * the top of each fuzz_<target>.c).
 *
 *   fuzz_seeds OUTDIR [GUEST_DIR]
 *
 * Device records and TSC records are saved from the same platform the
 * targets build (fuzz_common.c), in a few states each. Exits non-zero with
 * a message when anything fails. */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *outdir;

static void put(const char *target, const char *name, const void *a,
                size_t alen, const void *b, size_t blen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", outdir, target);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        fz_fail("mkdir %s: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "%s/%s/seed-%s.bin", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, alen, f) != alen ||
        (blen && fwrite(b, 1, blen, f) != blen) || fclose(f) != 0)
        fz_fail("writing %s: %s", path, strerror(errno));
}

/* ---- devstate ---------------------------------------------------------- */

static void devstate_seed(struct fz_platform *pf, int i, const char *state)
{
    size_t len;
    uint8_t *rec = fz_save_state(pf->dev[i], &len);
    uint8_t head[2] = {(uint8_t)i, 1};
    char name[96];
    snprintf(name, sizeof(name), "%s-%s", hvc_device_name(pf->dev[i]), state);
    put("devstate", name, head, 2, rec, len);
    free(rec);
}

static void pio(struct fz_platform *pf, uint16_t port, uint8_t v)
{
    uint64_t x = v;
    fz_access(pf->vcpu, HVC_IO_PIO, port, 1, true, &x);
}

/* An ARP request from virtio-net's guest (FZ_NET_MAC, 10.0.2.@p host) as
 * a 42-byte Ethernet frame. */
static void net_arp(uint8_t *f, uint8_t host)
{
    static const uint8_t mac[6] = FZ_NET_MAC;
    memset(f, 0xff, 6);
    memcpy(f + 6, mac, 6);
    f[12] = 0x08, f[13] = 0x06;
    uint8_t *a = f + 14;
    a[0] = 0, a[1] = 1, a[2] = 0x08, a[3] = 0, a[4] = 6, a[5] = 4;
    a[6] = 0, a[7] = 1;
    memcpy(a + 8, mac, 6);
    const uint8_t ip[4] = {10, 0, 2, host};
    memcpy(a + 14, ip, 4);
    memset(a + 18, 0, 6);
    const uint8_t gw[4] = {10, 0, 2, 2};
    memcpy(a + 24, gw, 4);
}

static void seeds_devstate(struct fz_platform *pf)
{
    for (int i = 0; i < FZ_NR_DEVICES; i++)
        devstate_seed(pf, i, "fresh");
    /* UART: divisor, line settings, interrupts, loopback bytes queued. */
    pio(pf, 0x3fb, 0x80);
    pio(pf, 0x3f8, 0x01);
    pio(pf, 0x3f9, 0x00);
    pio(pf, 0x3fb, 0x03);
    pio(pf, 0x3f9, 0x0f);
    pio(pf, 0x3fa, 0xc7);
    pio(pf, 0x3fc, 0x1b);
    for (int k = 0; k < 5; k++)
        pio(pf, 0x3f8, (uint8_t)('a' + k));
    pio(pf, 0x3ff, 0x5a);
    devstate_seed(pf, 0, "busy");
    /* CMOS: an index selected, NVRAM written. */
    for (int k = 0x10; k < 0x20; k++) {
        pio(pf, 0x70, (uint8_t)k);
        pio(pf, 0x71, (uint8_t)(k * 3));
    }
    pio(pf, 0x70, 0x0b);
    pio(pf, 0x71, 0x42);
    devstate_seed(pf, 1, "written");
    /* virtio: driver initialised, queue 0 (and 1) live. */
    for (uint32_t v = 0; v < FZ_NR_VIRTIO; v++) {
        fz_vio_setup(pf, v, 0, 8, 0x10000, 0x11000, 0x12000);
        devstate_seed(pf, FZ_FIRST_VIRTIO + (int)v, "live");
    }
    fz_vio_setup(pf, 2, 1, 16, 0x20000, 0x21000, 0x22000);
    devstate_seed(pf, FZ_FIRST_VIRTIO + 2, "live-q1");
    /* virtio-net: two packets sent while detached wait in its holding
     * queue, and the guest's address is learned from them. */
    uint8_t *ram = pf->ram.p;
    for (int i = 0; i < 2; i++) {
        uint8_t *d = ram + 0x20000 + 16 * i;
        uint64_t a = 0x30000 + 0x100 * (uint64_t)i;
        uint32_t l = 12 + 42;
        memcpy(d, &a, 8);
        memcpy(d + 8, &l, 4);
        net_arp(ram + a + 12, (uint8_t)(15 + i));
        uint16_t h = (uint16_t)i, idx = (uint16_t)(i + 1);
        memcpy(ram + 0x21004 + 2 * i, &h, 2);
        memcpy(ram + 0x21002, &idx, 2);
    }
    fz_vio_setup(pf, 3, 1, 16, 0x20000, 0x21000, 0x22000);
    fz_vio_w32(pf, 3, 0x50, 1);
    fz_flush(pf->vm);
    hvc_virtio_net_stats st = {.size = sizeof(st)};
    /* the device's worker moves them after the event thread woke it */
    for (int w = 0; w < 2000; w++) {
        if (hvc_virtio_net_get_stats(pf->dev[8], &st) < 0 || st.tx_holding == 2)
            break;
        usleep(1000);
    }
    if (st.tx_holding != 2)
        fz_fail("virtio-net holds %llu packets, not 2",
                (unsigned long long)st.tx_holding);
    devstate_seed(pf, FZ_FIRST_VIRTIO + 3, "held");
    fz_platform_reset(pf);
}

/* ---- tsc --------------------------------------------------------------- */

static void tsc_seed(hvc_vm *vm, const char *name, uint8_t opts)
{
    uint8_t buf[4096];
    size_t n;
    if (hvc_vm_save_tsc(vm, buf, sizeof(buf), &n) < 0)
        fz_fail("hvc_vm_save_tsc: %s", hvc_last_error());
    put("tsc", name, &opts, 1, buf, n);
}

static void seeds_tsc(void)
{
    struct fz_ram ram = fz_ram_new(64u << 10);
    hvc_vm *vm = fz_vm_new(0, ram, 2);
    tsc_seed(vm, "fresh", 0);
    tsc_seed(vm, "fresh-freeze", 1);
    hvc_vcpu *v0, *v1;
    if (hvc_vm_get_vcpu(vm, 0, &v0) < 0 || hvc_vm_get_vcpu(vm, 1, &v1) < 0)
        fz_fail("hvc_vm_get_vcpu: %s", hvc_last_error());
    hvc_vcpu_set_tsc_offset(v0, (uint64_t)-1000000, 0);
    hvc_vcpu_set_tsc_offset(v1, 1ull << 40, 0);
    tsc_seed(vm, "offsets", 0);
    hvc_vcpu_set_tsc(v0, 1ull << 50, 0);
    hvc_vcpu_set_tsc(v1, 12345, 0);
    tsc_seed(vm, "values", 4);
    hvc_vm_destroy(vm);
    /* A VM with a pinned frequency (may not restore on the fuzz VM: the
     * refusal is a path too). */
    vm = fz_vm_new(0, fz_ram_new(64u << 10), 1);
    hvc_tsc_frequency_options fo = HVC_TSC_FREQUENCY_OPTIONS_INIT;
    hvc_tsc_info ti = HVC_TSC_INFO_INIT;
    if (hvc_tsc_get_info(fz_hv(), &ti) == 0 && ti.host_tsc_khz) {
        fo.tsc_khz = ti.host_tsc_khz;
        if (hvc_vm_set_tsc_frequency(vm, &fo) == 0)
            tsc_seed(vm, "pinned", 0);
    }
    hvc_vm_destroy(vm);
}

/* ---- io ---------------------------------------------------------------- */

struct script {
    uint8_t b[4096];
    size_t n;
};

static void op(struct script *s, uint8_t o, uint16_t where, uint32_t value)
{
    if (s->n + 7 > sizeof(s->b))
        fz_fail("script too long");
    s->b[s->n++] = o;
    memcpy(s->b + s->n, &where, 2);
    memcpy(s->b + s->n + 2, &value, 4);
    s->n += 6;
}

/* An access to range @p r (fuzz_io.c's table) of 1 << @p lg bytes. */
static void acc(struct script *s, unsigned r, bool write, uint16_t off,
                unsigned lg, uint32_t v)
{
    op(s, (uint8_t)(r | (write ? 0x10 : 0)), (uint16_t)(off | lg << 14), v);
}

static void ram32(struct script *s, uint32_t gpa, uint32_t v)
{
    if (gpa % 4)
        fz_fail("ram32: unaligned 0x%x", gpa);
    op(s, 0x80, (uint16_t)(gpa / 4), v);
}

/* A split-ring descriptor in RAM through script writes (table at
 * 0x10000). */
static void ram_desc(struct script *s, int i, uint32_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint32_t d = 0x10000u + (uint32_t)i * 16;
    ram32(s, d, addr);
    ram32(s, d + 8, len);
    ram32(s, d + 12, flags | (uint32_t)next << 16);
}

static void vio_setup_script(struct script *s, unsigned r, uint32_t q,
                             uint32_t qsize)
{
    acc(s, r, true, 0x70, 2, 0);
    acc(s, r, true, 0x70, 2, 3);
    acc(s, r, false, 0x10, 2, 0);
    acc(s, r, true, 0x24, 2, 1);
    acc(s, r, true, 0x20, 2, 1); /* VIRTIO_F_VERSION_1 (bit 32) */
    acc(s, r, true, 0x70, 2, 11);
    acc(s, r, true, 0x30, 2, q);
    acc(s, r, false, 0x34, 2, 0);
    acc(s, r, true, 0x38, 2, qsize);
    acc(s, r, true, 0x80, 2, 0x10000);
    acc(s, r, true, 0x90, 2, 0x11000);
    acc(s, r, true, 0xa0, 2, 0x12000);
    acc(s, r, true, 0x44, 2, 1);
    acc(s, r, true, 0x70, 2, 15);
}

static void seeds_io(void)
{
    struct script s = {.n = 0};
    /* UART: every register read and written, divisor latch, loopback. */
    for (uint16_t reg = 0; reg < 8; reg++) {
        acc(&s, 0, true, reg, 0, 0x55u + reg);
        acc(&s, 0, false, reg, 0, 0);
    }
    acc(&s, 0, true, 3, 0, 0x80);
    acc(&s, 0, true, 0, 0, 1);
    acc(&s, 0, true, 3, 0, 3);
    acc(&s, 0, true, 4, 0, 0x1b);
    acc(&s, 0, true, 1, 0, 0x0f);
    for (int k = 0; k < 20; k++)
        acc(&s, 0, true, 0, 0, 'A' + (uint32_t)k);
    for (int k = 0; k < 20; k++)
        acc(&s, 0, false, 0, 0, 0);
    put("io", "uart", s.b, s.n, NULL, 0);
    /* CMOS and i8042, port 0x80, debug-exit, unclaimed accesses. */
    s.n = 0;
    for (uint16_t k = 0; k < 0x80; k += 5) {
        acc(&s, 1, true, 0, 0, k);
        acc(&s, 1, false, 1, 0, 0);
        acc(&s, 1, true, 1, 0, k);
    }
    acc(&s, 2, false, 0, 0, 0);
    acc(&s, 3, false, 0, 0, 0);
    acc(&s, 3, true, 0, 0, 0xfe);
    acc(&s, 4, true, 0, 0, 0x12);
    acc(&s, 5, true, 0, 0, 1);
    op(&s, 0xc0, 0x1234, 0x5678);
    op(&s, 0xc2 | 4, 0, 0x3fe);
    put("io", "legacy", s.b, s.n, NULL, 0);
    /* Each virtio device: init, a queue, a request, a notify. */
    for (unsigned v = 0; v < FZ_NR_VIRTIO; v++) {
        s.n = 0;
        for (uint16_t reg = 0; reg < 0x100; reg += 4)
            acc(&s, 6 + v, false, reg, 2, 0);
        vio_setup_script(&s, 6 + v, v == 2 ? 1 : 0, 8);
        ram_desc(&s, 0, 0x40000, 512, 2, 0);
        ram32(&s, 0x40000, 0); /* blk header: T_IN */
        ram32(&s, 0x11000, 1u << 16);
        acc(&s, 6 + v, true, 0x50, 2, v == 2 ? 1 : 0);
        op(&s, 0xc1, 0, 0);
        acc(&s, 6 + v, false, 0x60, 2, 0);
        acc(&s, 6 + v, true, 0x64, 2, 3);
        for (uint16_t c = 0; c < 0x40; c += 4)
            acc(&s, 6 + v, false, 0x100 + c, 2, 0);
        char name[32];
        snprintf(name, sizeof(name), "virtio%u", v);
        put("io", name, s.b, s.n, NULL, 0);
    }
    /* virtio-net (range 9): a packet on the transmit queue, and an
     * announce acknowledgement on the control queue (features MAC,
     * CTRL_VQ, GUEST_ANNOUNCE negotiated). */
    for (int ctrl = 0; ctrl < 2; ctrl++) {
        s.n = 0;
        uint32_t q = ctrl ? 2 : 1;
        acc(&s, 9, true, 0x70, 2, 0);
        acc(&s, 9, true, 0x70, 2, 3);
        acc(&s, 9, true, 0x24, 2, 0);
        acc(&s, 9, true, 0x20, 2, (1u << 5) | (1u << 17) | (1u << 21));
        acc(&s, 9, true, 0x24, 2, 1);
        acc(&s, 9, true, 0x20, 2, 1);
        acc(&s, 9, true, 0x70, 2, 11);
        acc(&s, 9, true, 0x30, 2, q);
        acc(&s, 9, true, 0x38, 2, 8);
        acc(&s, 9, true, 0x80, 2, 0x10000);
        acc(&s, 9, true, 0x90, 2, 0x11000);
        acc(&s, 9, true, 0xa0, 2, 0x12000);
        acc(&s, 9, true, 0x44, 2, 1);
        acc(&s, 9, true, 0x70, 2, 15);
        if (ctrl) {
            ram_desc(&s, 0, 0x40000, 2, 1, 1);
            ram_desc(&s, 1, 0x40100, 1, 2, 0);
            ram32(&s, 0x40000, 3); /* class ANNOUNCE, command ACK */
        } else {
            uint8_t f[12 + 44] = {0};
            net_arp(f + 12, 15);
            ram_desc(&s, 0, 0x40000, 12 + 42, 0, 0);
            for (uint32_t k = 0; k < sizeof(f); k += 4) {
                uint32_t w;
                memcpy(&w, f + k, 4);
                ram32(&s, 0x40000 + k, w);
            }
        }
        ram32(&s, 0x11000, 1u << 16);
        acc(&s, 9, true, 0x50, 2, q);
        op(&s, 0xc1, 0, 0);
        acc(&s, 9, false, 0x60, 2, 0);
        acc(&s, 9, true, 0x64, 2, 3);
        for (uint16_t c = 0; c < 0x10; c += 2)
            acc(&s, 9, false, 0x100 + c, 1, 0);
        put("io", ctrl ? "net-ctrl" : "net-tx", s.b, s.n, NULL, 0);
    }
}

/* ---- vqueue ------------------------------------------------------------ */

struct image {
    uint8_t head[3];
    uint8_t m[0x30000]; /* guest-physical 0x10000.. */
    size_t top;
};

static void img_put(struct image *im, uint64_t gpa, const void *p, size_t n)
{
    memcpy(im->m + (gpa - 0x10000), p, n);
    if (gpa - 0x10000 + n > im->top)
        im->top = gpa - 0x10000 + n;
}

static void img_desc(struct image *im, int i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t d[16];
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
    img_put(im, 0x10000 + (uint64_t)i * 16, d, 16);
}

static void img_avail(struct image *im, const uint16_t *heads, uint16_t n)
{
    uint16_t hdr[2] = {0, n};
    img_put(im, 0x11000, hdr, 4);
    img_put(im, 0x11004, heads, (size_t)n * 2);
}

static void vq_put(const char *name, struct image *im)
{
    put("vqueue", name, im->head, 3, im->m, im->top);
    memset(im, 0, sizeof(*im));
}

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

static void blk_req(struct image *im, int slot, uint32_t type, uint64_t sector,
                    uint32_t len)
{
    uint8_t hdr[16] = {0};
    memcpy(hdr, &type, 4);
    memcpy(hdr + 8, &sector, 8);
    uint64_t base = 0x30000 + (uint64_t)slot * 0x1000;
    img_put(im, base, hdr, 16);
    int d = slot * 3;
    bool in = type == 0 || type == 8;
    if (len) {
        img_desc(im, d, base, 16, F_NEXT, (uint16_t)(d + 1));
        img_desc(im, d + 1, 0x80000 + (uint64_t)slot * 0x2000, len,
                 (uint16_t)(F_NEXT | (in ? F_WRITE : 0)), (uint16_t)(d + 2));
        img_desc(im, d + 2, base + 0x100, 1, F_WRITE, 0);
    } else {
        img_desc(im, d, base, 16, F_NEXT, (uint16_t)(d + 2));
        img_desc(im, d + 2, base + 0x100, 1, F_WRITE, 0);
    }
}

static void seeds_vqueue(void)
{
    static struct image im;
    memset(&im, 0, sizeof(im));
    /* virtio-blk: read, write, flush, get-id, discard. */
    im.head[0] = 0, im.head[1] = 3, im.head[2] = 0;
    blk_req(&im, 0, 0, 0, 4096);
    blk_req(&im, 1, 1, 8, 1024);
    blk_req(&im, 2, 4, 0, 0);
    blk_req(&im, 3, 8, 0, 20);
    uint16_t heads[] = {0, 3, 6, 9};
    img_avail(&im, heads, 4);
    vq_put("blk-mixed", &im);
    im.head[0] = 0, im.head[1] = 3;
    {
        uint8_t seg[16] = {0};
        uint64_t sector = 2;
        uint32_t nsec = 4;
        memcpy(seg, &sector, 8);
        memcpy(seg + 8, &nsec, 4);
        img_put(&im, 0x3f000, seg, 16);
        blk_req(&im, 0, 11, 0, 0);
        img_desc(&im, 0, 0x30000, 16, F_NEXT, 1);
        img_desc(&im, 1, 0x3f000, 16, F_NEXT, 2);
        img_desc(&im, 2, 0x30100, 1, F_WRITE, 0);
        uint16_t h = 0;
        img_avail(&im, &h, 1);
        vq_put("blk-discard", &im);
    }
    /* An indirect table holding a read request. */
    im.head[0] = 0, im.head[1] = 3;
    {
        uint8_t hdr[16] = {0};
        img_put(&im, 0x30000, hdr, 16);
        uint8_t t[48];
        uint64_t a[3] = {0x30000, 0x80000, 0x30100};
        uint32_t l[3] = {16, 512, 1};
        uint16_t f[3] = {F_NEXT, F_NEXT | F_WRITE, F_WRITE};
        for (int i = 0; i < 3; i++) {
            memcpy(t + 16 * i, &a[i], 8);
            memcpy(t + 16 * i + 8, &l[i], 4);
            memcpy(t + 16 * i + 12, &f[i], 2);
            uint16_t nx = (uint16_t)(i + 1);
            memcpy(t + 16 * i + 14, &nx, 2);
        }
        img_put(&im, 0x14000, t, sizeof(t));
        img_desc(&im, 0, 0x14000, sizeof(t), F_INDIRECT, 0);
        uint16_t h = 0;
        img_avail(&im, &h, 1);
        vq_put("blk-indirect", &im);
    }
    /* Broken chains: a loop, a buffer past RAM, the avail index far on. */
    im.head[0] = 0, im.head[1] = 3;
    img_desc(&im, 0, 0x30000, 16, F_NEXT, 1);
    img_desc(&im, 1, 0x30010, 16, F_NEXT, 0);
    uint16_t h0 = 0;
    img_avail(&im, &h0, 1);
    vq_put("blk-loop", &im);
    im.head[0] = 0, im.head[1] = 3;
    img_desc(&im, 0, 0xff000, 0x2000, F_WRITE, 0);
    img_avail(&im, &h0, 1);
    vq_put("blk-past-ram", &im);
    im.head[0] = 0, im.head[1] = 3;
    blk_req(&im, 0, 0, 0, 512);
    {
        uint16_t hdr[2] = {0, 0x4000};
        img_put(&im, 0x11000, hdr, 4);
    }
    vq_put("blk-avail-ahead", &im);
    /* virtio-rng: two buffers to fill. */
    im.head[0] = 1, im.head[1] = 2;
    img_desc(&im, 0, 0x30000, 64, F_WRITE, 0);
    img_desc(&im, 1, 0x30100, 4096, F_WRITE, 0);
    uint16_t two[] = {0, 1};
    img_avail(&im, two, 2);
    vq_put("rng", &im);
    /* virtio-console: output on the transmit queue, a receive buffer. */
    im.head[0] = 2 | 4, im.head[1] = 3;
    img_put(&im, 0x30000, "hello, console\n", 15);
    img_desc(&im, 0, 0x30000, 15, 0, 0);
    img_avail(&im, &h0, 1);
    vq_put("console-tx", &im);
    im.head[0] = 2, im.head[1] = 3;
    img_desc(&im, 0, 0x30000, 256, F_WRITE, 0);
    img_avail(&im, &h0, 1);
    vq_put("console-rx", &im);
    /* virtio-net: two packets to send (one with a checksum offload
     * header), an announce acknowledgement, and receive buffers. */
    im.head[0] = 3 | 1 << 2, im.head[1] = 3;
    {
        uint8_t p[12 + 42] = {0};
        net_arp(p + 12, 15);
        img_put(&im, 0x30000, p, sizeof(p));
        p[0] = 1;             /* VIRTIO_NET_HDR_F_NEEDS_CSUM */
        p[6] = 14, p[8] = 16; /* csum_start, csum_offset */
        img_put(&im, 0x30100, p, sizeof(p));
        img_desc(&im, 0, 0x30000, 12, F_NEXT, 1);
        img_desc(&im, 1, 0x3000c, 42, 0, 0);
        img_desc(&im, 2, 0x30100, sizeof(p), 0, 0);
        uint16_t hs[] = {0, 2};
        img_avail(&im, hs, 2);
        vq_put("net-tx", &im);
    }
    im.head[0] = 3 | 2 << 2, im.head[1] = 3;
    {
        const uint8_t cmd[2] = {3, 0};
        img_put(&im, 0x30000, cmd, 2);
        img_desc(&im, 0, 0x30000, 2, F_NEXT, 1);
        img_desc(&im, 1, 0x30100, 1, F_WRITE, 0);
        img_avail(&im, &h0, 1);
        vq_put("net-ctrl", &im);
    }
    /* receive: two packets (60 and 1514 bytes) into two buffers; four
     * packets of up to 20000 bytes into eight mergeable 4 KiB buffers */
    im.head[0] = 3, im.head[1] = 3, im.head[2] = 1 << 2;
    img_desc(&im, 0, 0x30000, 1526, F_WRITE, 0);
    img_desc(&im, 1, 0x31000, 1526, F_WRITE, 0);
    img_avail(&im, two, 2);
    vq_put("net-rx", &im);
    im.head[0] = 3, im.head[1] = 3, im.head[2] = 3 | 3 << 2 | 1 << 4;
    {
        uint16_t hs[8];
        for (int i = 0; i < 8; i++) {
            img_desc(&im, i, 0x40000 + 0x1000 * (uint64_t)i, 4096, F_WRITE, 0);
            hs[i] = (uint16_t)i;
        }
        img_avail(&im, hs, 8);
    }
    vq_put("net-rx-mergeable", &im);
}

/* ---- loader ------------------------------------------------------------ */

static const char *guest_dir = HVCORE_GUEST_DIR;

static void loader_seed(const char *file, uint8_t format, uint8_t flags,
                        uint32_t raw_addr)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", guest_dir, file);
    FILE *f = fopen(path, "rb");
    if (!f)
        fz_fail("cannot open %s: %s", path, strerror(errno));
    static uint8_t img[1 << 20];
    size_t n = fread(img, 1, sizeof(img), f);
    fclose(f);
    uint8_t head[12] = {format, flags, 0x40, 0};
    memcpy(head + 4, &raw_addr, 4);
    memcpy(head + 8, &raw_addr, 4);
    char name[160];
    snprintf(name, sizeof(name), "%s-%u-%u", file, format, flags);
    put("loader", name, head, sizeof(head), img, n);
}

static void seeds_loader(void)
{
    loader_seed("pvh32.elf", 0, 3, 0);
    loader_seed("pvh32.elf", 1, 0, 0);
    loader_seed("linux64.elf", 0, 7, 0);
    loader_seed("smp32.elf", 1, 2, 0);
    loader_seed("hlt64.elf", 1, 0, 0);
    loader_seed("bzimage64.bin", 0, 3, 0);
    loader_seed("bzimage64.bin", 2, 4, 0);
    loader_seed("hlt64.bin", 3, (uint8_t)(HVC_X86_MODE_LONG64 << 4), 0x8000);
    loader_seed("real16.bin", 3, (uint8_t)(HVC_X86_MODE_REAL << 4), 0x7c00);
}

/* ---- x86_decode --------------------------------------------------------- */

/* One seed: the state byte, an 8-byte register seed, the instruction. */
static void x86_seed(const char *name, uint8_t state, const uint8_t *insn,
                     size_t n)
{
    uint8_t head[9] = {state, 1, 2, 3, 4, 5, 6, 7, 8};
    put("x86_decode", name, head, sizeof(head), insn, n);
}

static void seeds_x86(void)
{
    static const struct {
        const char *name;
        uint8_t state;
        uint8_t n;
        uint8_t b[15];
    } s[] = {
        {"mov-store", 0x10, 2, {0x89, 0x03}},
        {"mov-load-rex", 0x10, 4, {0x4c, 0x8b, 0x4b, 0x10}},
        {"mov-rip", 0x00, 6, {0x8b, 0x05, 0x00, 0x10, 0x00, 0x00}},
        {"mov-imm64", 0x10, 7, {0x48, 0xc7, 0x03, 0xff, 0xff, 0xff, 0xff}},
        {"moffs", 0x10, 9, {0xa1, 0, 1, 0, 0, 0, 0, 0, 0}},
        {"movzx", 0x10, 3, {0x0f, 0xb6, 0x03}},
        {"movsxd", 0x10, 3, {0x48, 0x63, 0x03}},
        {"or-sib", 0x10, 5, {0x66, 0x09, 0x44, 0xb3, 0xf8}},
        {"lock-add", 0x10, 4, {0xf0, 0x83, 0x03, 0x01}},
        {"sbb-32", 0x11, 2, {0x19, 0x03}},
        {"a16", 0x11, 4, {0x67, 0x01, 0x40, 0x10}},
        {"real16", 0x12, 3, {0x88, 0x47, 0x02}},
        {"bts", 0x10, 4, {0x48, 0x0f, 0xab, 0x03}},
        {"bt-imm", 0x10, 4, {0x0f, 0xba, 0x23, 0x05}},
        {"xchg", 0x10, 2, {0x87, 0x03}},
        {"neg", 0x10, 2, {0xf7, 0x1b}},
        {"rep-stos", 0x10, 3, {0xf3, 0x48, 0xab}},
        {"rep-movs-down", 0x1c, 2, {0xf3, 0xa4}},
        {"rep-movs-a32", 0x14, 3, {0xf3, 0x67, 0xa5}},
        {"fs-lods", 0x10, 2, {0x64, 0xac}},
        {"failing", 0x30, 2, {0x89, 0x03}},
    };
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        x86_seed(s[i].name, s[i].state, s[i].b, s[i].n);
}

/* ---- handover ---------------------------------------------------------- */

/* fuzz_handover.c's input: descriptor count, announced count, kinds,
 * cut, edits. The first is the true hand-over the harness captured. */
static void seeds_handover(void)
{
    static const uint8_t good[] = {2, 0, 0, 7, 0, 0, 0};
    static const uint8_t pipe_ram[] = {2, 0, 2, 7, 0, 0, 0};
    static const uint8_t short_ram[] = {2, 0, 1, 7, 0, 0, 0};
    static const uint8_t cut[] = {2, 0, 0, 7, 0, 0x40, 0x01};
    /* the FDS section's region offset (byte 264 + 24 + 8 + 16 + 1) */
    static const uint8_t offset[] = {2, 0, 0, 7, 0, 0, 0, 0x39, 0x01, 0x10};
    put("handover", "good", good, sizeof(good), NULL, 0);
    put("handover", "pipe", pipe_ram, sizeof(pipe_ram), NULL, 0);
    put("handover", "short", short_ram, sizeof(short_ram), NULL, 0);
    put("handover", "cut", cut, sizeof(cut), NULL, 0);
    put("handover", "offset", offset, sizeof(offset), NULL, 0);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: fuzz_seeds OUTDIR [GUEST_DIR]\n");
        return 2;
    }
    outdir = argv[1];
    if (argc == 3)
        guest_dir = argv[2];
    if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
        fz_fail("mkdir %s: %s", outdir, strerror(errno));
    struct fz_platform *pf = fz_platform();
    seeds_devstate(pf);
    seeds_tsc();
    seeds_io();
    seeds_vqueue();
    seeds_loader();
    seeds_x86();
    seeds_handover();
    return 0;
}
