/* What the benchmarks' PVH guests share (a 32-bit PVH ELF that both
 * libhvcore and QEMU's microvm boot): the start-of-day structures of the
 * PVH ABI, the ELF note naming the entry, and the entry itself, which sets
 * up a stack and calls pvh_main(start_info). */
#ifndef BENCH_PVH_GUEST_H
#define BENCH_PVH_GUEST_H

#include <stdint.h>

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

struct memmap {
    uint64_t addr, size;
    uint32_t type, reserved;
};

/* The note: name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), the entry. */
__asm__(".pushsection .note.Xen, \"a\", @note\n"
        ".align 4\n"
        ".long 4, 4, 18\n"
        ".asciz \"Xen\"\n"
        ".long pvh_start\n"
        ".popsection\n"
        ".pushsection .text.entry, \"ax\"\n"
        ".globl pvh_start, _start\n"
        "_start:\n"
        "pvh_start:\n"
        "    mov $stack_top, %esp\n"
        "    push %ebx\n"
        "    call pvh_main\n"
        "1:  cli\n"
        "    hlt\n"
        "    jmp 1b\n"
        ".popsection\n");

static uint8_t stack[4096] __attribute__((used, aligned(16)));
__asm__(".set stack_top, stack + 4096");

void pvh_main(const struct hvm_start_info *si);

/* The end of the highest RAM entry below 4 GiB in the memory map. */
static inline uint64_t pvh_ram_top(const struct hvm_start_info *si)
{
    const struct memmap *mm =
        (const struct memmap *)(uintptr_t)si->memmap_paddr;
    uint64_t top = 0;
    for (uint32_t i = 0; i < si->memmap_entries; i++) {
        uint64_t end = mm[i].addr + mm[i].size;
        if (mm[i].type == 1 && end > top && end <= (1ull << 32))
            top = end;
    }
    return top;
}

#endif
