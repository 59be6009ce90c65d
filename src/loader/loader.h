/* Loader internals: the boot area layout, and the load plan every format
 * fills before anything is written. */
#ifndef HVCORE_LOADER_INTERNAL_H
#define HVCORE_LOADER_INTERNAL_H

#include "../core/internal.h"

#include <hvcore/loader.h>

/* Guest-physical layout of the boot data (docs/BOOT.md). */
#define BOOT_START_INFO 0x6000ull /* hvm_start_info, modules, memory map */
#define BOOT_ZERO_PAGE 0x7000ull  /* Linux boot_params */
#define BOOT_CMDLINE 0x8000ull    /* command line, up to BOOT_CMDLINE_MAX */
#define BOOT_CMDLINE_MAX 0x1000ull
#define BOOT_STACK 0x10000ull  /* grows down from here to 0x9000 */
#define BOOT_TABLES 0x10000ull /* GDT and identity page tables */
#define BOOT_AREA_END 0x9f000ull
#define HIMEM 0x100000ull /* where RAM resumes above the BIOS hole */
#define EBDA_START 0x9fc00ull

/* e820 types, also the PVH memory-map types. */
#define E820_RAM 1
#define E820_RESERVED 2
#define E820_MAX 128

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));

/* One write into guest memory: len bytes from src, then zero bytes of
 * zeroes (an ELF .bss). */
struct chunk {
    uint64_t gpa;
    const void *src;
    uint64_t len;
    uint64_t zero;
    const char *what;
};

struct plan {
    hvc_vm *vm;
    hvc_boot_options opts;
    hvc_boot_info info;
    struct chunk *chunks;
    size_t nr_chunks;
    void *owned[8]; /* buffers the plan allocated, freed at the end */
    size_t nr_owned;
};

int hvi_plan_add(struct plan *p, uint64_t gpa, const void *src, uint64_t len,
                 uint64_t zero, const char *what);
void *hvi_plan_alloc(struct plan *p, size_t size);

/* Formats. Each validates its image and adds chunks; none writes. */
int hvi_load_elf(struct plan *p);
int hvi_load_bzimage(struct plan *p);

/* Boot data. */
int hvi_e820(hvc_vm *vm, struct e820_entry *out, uint32_t *count);
int hvi_add_cmdline(struct plan *p, uint64_t max_len);
int hvi_place_initrd(struct plan *p, uint64_t limit);
int hvi_add_pvh_start_info(struct plan *p);
/* Builds a zero page; hdr (the image's setup header from 0x1f1, or NULL for
 * an ELF vmlinux) is copied in first. */
int hvi_add_boot_params(struct plan *p, const uint8_t *hdr, size_t hdr_len);

#endif
