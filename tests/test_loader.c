/* The loaders through hvc_vm_load_kernel(): what each format produces, the
 * errors for malformed input, and hundreds of truncated and corrupted
 * images mutated from real ones. Every failure must leave guest memory
 * byte for byte as it was. */
#include "hvtest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAM (16u << 20)

struct image {
    uint8_t *data;
    size_t len;
};

static struct image load_file(const char *path)
{
    struct image im = {0};
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    im.len = (size_t)ftell(f);
    rewind(f);
    im.data = malloc(im.len);
    cr_assert_eq(fread(im.data, 1, im.len, f), im.len);
    fclose(f);
    return im;
}

static struct image guest(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", HVT_GUEST_DIR, name);
    return load_file(path);
}

struct rig {
    hvt t;
    uint8_t *ram;
    uint8_t *pristine; /* what RAM must still hold after a failure */
};

static void rig_open(struct rig *g)
{
    hvt_require_kvm();
    memset(&g->t, 0, sizeof(g->t));
    HVT_OK(hvc_hypervisor_open("kvm", &g->t.hv));
    HVT_OK(hvc_vm_create(g->t.hv, NULL, &g->t.vm));
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = RAM;
    HVT_OK(hvc_vm_add_memory(g->t.vm, &m, &g->t.ram));
    g->ram = hvc_memory_region_hva(g->t.ram);
    g->pristine = malloc(RAM);
    for (size_t i = 0; i < RAM; i++)
        g->pristine[i] = (uint8_t)(i * 131 + 7);
    memcpy(g->ram, g->pristine, RAM);
}

static void rig_close(struct rig *g)
{
    free(g->pristine);
    hvt_close(&g->t);
}

/* Loads; on failure checks the errno, the message and untouched RAM; on
 * success puts RAM back for the next case. Returns the result. */
static int try_load(struct rig *g, const void *k, size_t len, int format,
                    const char *cmdline, const char *what)
{
    hvc_boot_options o = HVC_BOOT_OPTIONS_INIT;
    o.kernel = k;
    o.kernel_size = len;
    o.format = (uint32_t)format;
    o.cmdline = cmdline;
    hvc_boot_info info;
    int r = hvc_vm_load_kernel(g->t.vm, &o, &info);
    if (r < 0) {
        cr_assert(r == -EINVAL || r == -EFAULT || r == -EEXIST ||
                      r == -ENOEXEC || r == -E2BIG,
                  "%s: unexpected error %d (%s)", what, r, hvc_last_error());
        cr_assert_neq(hvc_last_error()[0], 0, "%s: no message", what);
        cr_assert(memcmp(g->ram, g->pristine, RAM) == 0,
                  "%s: a failed load (%s) changed guest memory", what,
                  hvc_last_error());
    } else {
        memcpy(g->ram, g->pristine, RAM);
    }
    return r;
}

Test(loader, elf_pvh_and_plain)
{
    struct rig g;
    rig_open(&g);
    struct image pvh = guest("pvh32.elf"), l64 = guest("linux64.elf"),
                 s32 = guest("smp32.elf");
    hvc_boot_options o = HVC_BOOT_OPTIONS_INIT;
    hvc_boot_info info;
    o.kernel = pvh.data;
    o.kernel_size = pvh.len;
    o.cmdline = "a b c";
    HVT_OK(hvc_vm_load_kernel(g.t.vm, &o, &info));
    cr_assert_eq(info.format, HVC_KERNEL_ELF);
    cr_assert_eq(info.protocol, HVC_BOOT_PVH);
    cr_assert_eq(info.mode, HVC_X86_MODE_PROTECTED32);
    cr_assert_eq(info.kernel_start, 0x100000);
    cr_assert_eq(info.params_address, 0x6000);
    uint32_t magic;
    HVT_OK(hvc_vm_read(g.t.vm, 0x6000, &magic, 4));
    cr_assert_eq(magic, 0x336ec578);
    char cmd[8];
    HVT_OK(hvc_vm_read(g.t.vm, info.cmdline_address, cmd, 6));
    cr_assert_str_eq(cmd, "a b c");

    o.kernel = l64.data;
    o.kernel_size = l64.len;
    HVT_OK(hvc_vm_load_kernel(g.t.vm, &o, &info));
    cr_assert_eq(info.protocol, HVC_BOOT_LINUX64);
    cr_assert_eq(info.mode, HVC_X86_MODE_LONG64);
    cr_assert_eq(info.params_address, 0x7000);
    o.kernel = s32.data;
    o.kernel_size = s32.len;
    HVT_OK(hvc_vm_load_kernel(g.t.vm, &o, &info));
    cr_assert_eq(info.protocol, HVC_BOOT_FLAT);
    cr_assert_eq(info.mode, HVC_X86_MODE_PROTECTED32);
    cr_assert_eq(info.params_address, 0);
    free(pvh.data);
    free(l64.data);
    free(s32.data);
    rig_close(&g);
}

Test(loader, malformed_inputs_are_refused)
{
    struct rig g;
    rig_open(&g);
    struct image bz = guest("bzimage64.bin"), l64 = guest("linux64.elf");
    uint8_t *k = malloc(bz.len);
    hvc_boot_options o = HVC_BOOT_OPTIONS_INIT;
    hvc_boot_info info;

    HVT_ERR(try_load(&g, "garbage!", 8, HVC_KERNEL_AUTO, NULL, "garbage"),
            -ENOEXEC);
    cr_assert(strstr(hvc_last_error(), "neither ELF"), "%s", hvc_last_error());
    memcpy(k, bz.data, bz.len); /* protocol 2.05 */
    k[0x206] = 0x05;
    HVT_ERR(try_load(&g, k, bz.len, HVC_KERNEL_AUTO, NULL, "old"), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "2.05 is older than 2.06"), "%s",
              hvc_last_error());
    memcpy(k, bz.data, bz.len); /* no 64-bit entry */
    k[0x236] = 0;
    HVT_ERR(try_load(&g, k, bz.len, HVC_KERNEL_AUTO, NULL, "32"), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "64-bit entry"), "%s", hvc_last_error());
    memcpy(k, bz.data, bz.len); /* setup runs past the file */
    k[0x1f1] = 200;
    HVT_ERR(try_load(&g, k, bz.len, HVC_KERNEL_AUTO, NULL, "setup"), -EINVAL);
    memcpy(k, bz.data, bz.len); /* needs more RAM than there is */
    uint32_t huge = 0x7ffff000;
    memcpy(k + 0x260, &huge, 4);
    HVT_ERR(try_load(&g, k, bz.len, HVC_KERNEL_AUTO, NULL, "init_size"),
            -EFAULT);
    cr_assert(strstr(hvc_last_error(), "not inside guest RAM"), "%s",
              hvc_last_error());
    /* a command line longer than the kernel takes (cmdline_size 0x7ff) */
    char *longcmd = malloc(4000);
    memset(longcmd, 'x', 3999);
    longcmd[3999] = 0;
    HVT_ERR(try_load(&g, bz.data, bz.len, HVC_KERNEL_AUTO, longcmd, "cmd"),
            -EINVAL);
    cr_assert(strstr(hvc_last_error(), "2047"), "%s", hvc_last_error());
    free(longcmd);
    /* an initrd too large for the RAM below the limit */
    o.kernel = bz.data;
    o.kernel_size = bz.len;
    o.initrd = g.pristine;
    o.initrd_size = RAM;
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -E2BIG);
    cr_assert(strstr(hvc_last_error(), "initrd of"), "%s", hvc_last_error());
    cr_assert(memcmp(g.ram, g.pristine, RAM) == 0);
    /* a raw image outside RAM, or overlapping the boot data */
    o = (hvc_boot_options)HVC_BOOT_OPTIONS_INIT;
    o.kernel = bz.data;
    o.kernel_size = bz.len;
    o.format = HVC_KERNEL_RAW;
    o.raw_address = RAM - 0x100;
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -EFAULT);
    o.raw_address = 0x10000; /* the page tables' place */
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -EEXIST);
    cr_assert(strstr(hvc_last_error(), "overlaps"), "%s", hvc_last_error());
    o.raw_mode = 9;
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -EINVAL);
    cr_assert(memcmp(g.ram, g.pristine, RAM) == 0);
    /* an entry the raw mode cannot reach (found by tests/fuzz/fuzz_loader:
     * it loaded, then hvc_vcpu_boot() refused it) */
    o.raw_address = 0x200000;
    o.raw_mode = HVC_X86_MODE_REAL;
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "real mode"), "%s", hvc_last_error());
    o.raw_mode = HVC_X86_MODE_PROTECTED32;
    o.raw_entry = 1ull << 32;
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -EINVAL);
    cr_assert(memcmp(g.ram, g.pristine, RAM) == 0);
    o.raw_entry = 0;
    HVT_OK(hvc_vm_load_kernel(g.t.vm, &o, &info));
    memcpy(g.ram, g.pristine, RAM);
    o.raw_address = 0x7c00;
    o.raw_mode = HVC_X86_MODE_REAL;
    HVT_OK(hvc_vm_load_kernel(g.t.vm, &o, &info));
    hvc_vcpu *bv;
    HVT_OK(hvc_vcpu_create(g.t.vm, 0, &bv));
    HVT_OK(hvc_vcpu_boot(bv, &info));
    memcpy(g.ram, g.pristine, RAM);
    /* an ELF segment over the boot data */
    uint8_t *e = malloc(l64.len);
    memcpy(e, l64.data, l64.len);
    uint64_t phoff, paddr = 0x7000;
    memcpy(&phoff, e + 32, 8);
    memcpy(e + phoff + 24, &paddr, 8); /* first phdr's p_paddr */
    HVT_ERR(try_load(&g, e, l64.len, HVC_KERNEL_AUTO, NULL, "overlap"),
            -EEXIST);
    cr_assert(strstr(hvc_last_error(), "overlaps"), "%s", hvc_last_error());
    /* options */
    o = (hvc_boot_options)HVC_BOOT_OPTIONS_INIT;
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -EINVAL);
    o.kernel = bz.data;
    o.kernel_size = bz.len;
    o.format = 7;
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -EINVAL);
    o.format = HVC_KERNEL_AUTO;
    o.size = 12;
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, &o, &info), -EINVAL);
    HVT_ERR(hvc_vm_load_kernel(g.t.vm, NULL, &info), -EINVAL);
    HVT_ERR(hvc_vcpu_boot(NULL, &info), -EINVAL);
    free(e);
    free(k);
    free(bz.data);
    free(l64.data);
    rig_close(&g);
}

/* xorshift: a fixed seed, so a failure reproduces */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static unsigned fuzz_one(struct rig *g, const struct image *seed,
                         uint64_t *state, unsigned cases)
{
    uint8_t *k = malloc(seed->len);
    unsigned refused = 0;
    char what[96];
    /* truncations, denser in the headers */
    for (unsigned i = 0; i < cases / 2; i++) {
        size_t len = i < 64 ? (size_t)i * 16 : rnd(state) % seed->len;
        if (len == 0)
            continue;
        snprintf(what, sizeof(what), "truncated to %zu", len);
        refused += try_load(g, seed->data, len, HVC_KERNEL_AUTO, "x", what) < 0;
    }
    /* 1 to 8 random bytes overwritten, mostly within the first 4 KiB */
    for (unsigned i = 0; i < cases / 2; i++) {
        memcpy(k, seed->data, seed->len);
        unsigned n = 1 + (unsigned)(rnd(state) % 8);
        for (unsigned j = 0; j < n; j++) {
            size_t span = (rnd(state) & 3) ? 4096 : seed->len;
            if (span > seed->len)
                span = seed->len;
            k[rnd(state) % span] = (uint8_t)rnd(state);
        }
        snprintf(what, sizeof(what), "mutation %u", i);
        refused += try_load(g, k, seed->len, HVC_KERNEL_AUTO, "x", what) < 0;
    }
    free(k);
    return refused;
}

Test(loader, hundreds_of_corrupted_images, .timeout = 240)
{
    struct rig g;
    rig_open(&g);
    const char *seeds[] = {"pvh32.elf", "linux64.elf", "smp32.elf",
                           "bzimage64.bin"};
    uint64_t state = 0x9e3779b97f4a7c15ull;
    unsigned total = 0, refused = 0;
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        struct image im = guest(seeds[i]);
        refused += fuzz_one(&g, &im, &state, 300);
        total += 300;
        free(im.data);
    }
    /* Debian's kernel, when the boot suite fetched it */
    const char *deb = getenv("HVT_DEBIAN_KERNEL");
    FILE *f = deb ? fopen(deb, "rb") : NULL;
    if (f) {
        fclose(f);
        struct image im = load_file(deb);
        refused += fuzz_one(&g, &im, &state, 200);
        total += 200;
        free(im.data);
    }
    cr_log_info("%u corrupted images, %u refused cleanly", total, refused);
    cr_assert_gt(refused, total / 3, "most corruptions should be caught");
    rig_close(&g);
}
