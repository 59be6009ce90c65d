/* Boot data shared by the formats: the memory map, the command line, the
 * initrd, the PVH start_info and the Linux boot_params. */
#include "loader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* The memory map: every writable region is RAM, except the legacy hole
 * 0x9fc00-0x100000 (EBDA, VGA, BIOS area, where the ACPI tables live),
 * which is reserved. Read-only regions are reserved. */
int hvi_e820(hvc_vm *vm, struct e820_entry *out, uint32_t *count)
{
    hvc_memory_region **r;
    size_t n;
    int err = hvi_memory_snapshot(vm, &r, &n);
    if (err < 0)
        return err;
    uint32_t k = 0;
    bool hole = false;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = hvc_memory_region_guest_addr(r[i]);
        uint64_t b = a + hvc_memory_region_length(r[i]);
        uint32_t type = (hvc_memory_region_flags(r[i]) & HVC_MEMORY_READONLY)
                            ? E820_RESERVED
                            : E820_RAM;
        /* split around the legacy hole */
        uint64_t pieces[3][2] = {
            {a, b < EBDA_START ? b : EBDA_START},
            {a > EBDA_START ? a : EBDA_START, b < HIMEM ? b : HIMEM},
            {a > HIMEM ? a : HIMEM, b}};
        for (int j = 0; j < 3; j++) {
            if (pieces[j][1] <= pieces[j][0])
                continue;
            if (j == 1) {
                hole = true;
                continue;
            }
            if (k == E820_MAX - 1) {
                free(r);
                return hvi_error(-E2BIG, "more than %d memory-map entries",
                                 E820_MAX - 1);
            }
            out[k++] = (struct e820_entry){pieces[j][0],
                                           pieces[j][1] - pieces[j][0], type};
        }
    }
    free(r);
    if (hole) {
        /* keep the table sorted: the hole goes after the low RAM entry */
        uint32_t at = 0;
        while (at < k && out[at].addr < EBDA_START)
            at++;
        memmove(&out[at + 1], &out[at], (k - at) * sizeof(*out));
        out[at] =
            (struct e820_entry){EBDA_START, HIMEM - EBDA_START, E820_RESERVED};
        k++;
    }
    if (k == 0)
        return hvi_error(-EFAULT, "the VM has no memory to load into");
    *count = k;
    return 0;
}

int hvi_add_cmdline(struct plan *p, uint64_t max_len)
{
    const char *c = p->opts.cmdline ? p->opts.cmdline : "";
    uint64_t limit =
        max_len < BOOT_CMDLINE_MAX - 1 ? max_len : BOOT_CMDLINE_MAX - 1;
    size_t len = strnlen(c, limit + 1);
    if (len > limit)
        return hvi_error(
            -EINVAL, "command line is longer than %" PRIu64 " bytes", limit);
    p->info.cmdline_address = BOOT_CMDLINE;
    /* len + 1: the terminating NUL goes too */
    return hvi_plan_add(p, BOOT_CMDLINE, c, len + 1, 0, "command line");
}

/* The initrd goes as high as possible below limit (exclusive), page
 * aligned, in a RAM entry above 1 MiB, clear of the kernel. */
int hvi_place_initrd(struct plan *p, uint64_t limit)
{
    uint64_t size = p->opts.initrd_size;
    if (!size)
        return 0;
    struct e820_entry map[E820_MAX];
    uint32_t n;
    int r = hvi_e820(p->vm, map, &n);
    if (r < 0)
        return r;
    uint64_t best = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (map[i].type != E820_RAM || map[i].addr < HIMEM)
            continue;
        uint64_t lo = map[i].addr, hi = map[i].addr + map[i].size;
        if (hi > limit)
            hi = limit;
        if (lo < p->info.kernel_end && p->info.kernel_end < hi)
            lo = p->info.kernel_end; /* stay above the kernel */
        if (hi < lo + size)
            continue;
        uint64_t at = (hi - size) & ~(uint64_t)(HVC_PAGE_SIZE - 1);
        if (at >= lo && at > best)
            best = at;
    }
    if (!best)
        return hvi_error(-E2BIG,
                         "initrd of %" PRIu64 " bytes does not fit in RAM "
                         "below 0x%" PRIx64 " above the kernel",
                         size, limit);
    p->info.initrd_address = best;
    p->info.initrd_size = size;
    return hvi_plan_add(p, best, p->opts.initrd, size, 0, "initrd");
}

/* The PVH boot ABI's structures (xen/include/public/arch-x86/hvm/start_info.h
 * names the fields). */
struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};

struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};

struct hvm_memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "modlist layout");
_Static_assert(sizeof(struct hvm_memmap_entry) == 24, "memmap layout");

#define START_INFO_MAGIC 0x336ec578
#define MODLIST_OFFSET 0x40
#define MEMMAP_OFFSET 0x80

int hvi_add_pvh_start_info(struct plan *p)
{
    size_t size = MEMMAP_OFFSET + E820_MAX * sizeof(struct hvm_memmap_entry);
    uint8_t *b = hvi_plan_alloc(p, size);
    if (!b)
        return hvi_error(-ENOMEM, "out of memory building start_info");
    struct e820_entry map[E820_MAX];
    uint32_t n;
    int r = hvi_e820(p->vm, map, &n);
    if (r < 0)
        return r;
    struct hvm_start_info si = {
        .magic = START_INFO_MAGIC,
        .version = 1,
        .cmdline_paddr = p->info.cmdline_address,
        .rsdp_paddr = p->opts.acpi_rsdp,
        .memmap_paddr = BOOT_START_INFO + MEMMAP_OFFSET,
        .memmap_entries = n,
    };
    if (p->info.initrd_size) {
        struct hvm_modlist_entry m = {p->info.initrd_address,
                                      p->info.initrd_size, 0, 0};
        memcpy(b + MODLIST_OFFSET, &m, sizeof(m));
        si.nr_modules = 1;
        si.modlist_paddr = BOOT_START_INFO + MODLIST_OFFSET;
    }
    memcpy(b, &si, sizeof(si));
    for (uint32_t i = 0; i < n; i++) {
        struct hvm_memmap_entry e = {map[i].addr, map[i].size, map[i].type, 0};
        memcpy(b + MEMMAP_OFFSET + i * sizeof(e), &e, sizeof(e));
    }
    p->info.params_address = BOOT_START_INFO;
    return hvi_plan_add(p, BOOT_START_INFO, b,
                        MEMMAP_OFFSET + n * sizeof(struct hvm_memmap_entry), 0,
                        "PVH start_info");
}

/* boot_params offsets (Documentation/arch/x86/zero-page.rst, boot.rst). */
#define BP_ACPI_RSDP 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_BOOT_FLAG 0x1fe
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_HEAP_END_PTR 0x224
#define BP_CMD_LINE_PTR 0x228
#define BP_CMDLINE_SIZE 0x238
#define BP_E820_TABLE 0x2d0
#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80

static void put32(uint8_t *b, size_t off, uint32_t v)
{
    memcpy(b + off, &v, 4);
}

int hvi_add_boot_params(struct plan *p, const uint8_t *hdr, size_t hdr_len)
{
    uint8_t *zp = hvi_plan_alloc(p, HVC_PAGE_SIZE);
    if (!zp)
        return hvi_error(-ENOMEM, "out of memory building boot_params");
    if (hdr) {
        memcpy(zp + BP_HDR, hdr, hdr_len);
    } else {
        /* A vmlinux has no setup header: describe ourselves as a loader
         * speaking protocol 2.10. */
        uint16_t flag = 0xaa55, version = 0x020a;
        memcpy(zp + BP_BOOT_FLAG, &flag, 2);
        memcpy(zp + BP_HEADER, "HdrS", 4);
        memcpy(zp + BP_VERSION, &version, 2);
        put32(zp, BP_CMDLINE_SIZE, BOOT_CMDLINE_MAX - 1);
    }
    zp[BP_TYPE_OF_LOADER] = 0xff; /* undefined loader */
    zp[BP_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
    uint16_t heap_end = 0xfe00;
    memcpy(zp + BP_HEAP_END_PTR, &heap_end, 2);
    put32(zp, BP_CMD_LINE_PTR, (uint32_t)p->info.cmdline_address);
    put32(zp, BP_EXT_CMD_LINE_PTR, (uint32_t)(p->info.cmdline_address >> 32));
    put32(zp, BP_RAMDISK_IMAGE, (uint32_t)p->info.initrd_address);
    put32(zp, BP_EXT_RAMDISK_IMAGE, (uint32_t)(p->info.initrd_address >> 32));
    put32(zp, BP_RAMDISK_SIZE, (uint32_t)p->info.initrd_size);
    put32(zp, BP_EXT_RAMDISK_SIZE, (uint32_t)(p->info.initrd_size >> 32));
    memcpy(zp + BP_ACPI_RSDP, &p->opts.acpi_rsdp, 8);
    struct e820_entry map[E820_MAX];
    uint32_t n;
    int r = hvi_e820(p->vm, map, &n);
    if (r < 0)
        return r;
    zp[BP_E820_ENTRIES] = (uint8_t)n;
    memcpy(zp + BP_E820_TABLE, map, n * sizeof(map[0]));
    p->info.params_address = BOOT_ZERO_PAGE;
    return hvi_plan_add(p, BOOT_ZERO_PAGE, zp, HVC_PAGE_SIZE, 0, "boot_params");
}
