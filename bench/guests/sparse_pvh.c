/* A sparse PVH guest for bench/sparse_snapshot.c: it fills TOUCH_PAGES
 * pages (1 MiB), spread evenly over its RAM above 4 MiB, with non-zero
 * bytes, writes 'R' to COM1 and halts. The same ELF boots under libhvcore
 * and under QEMU's microvm, so both save the same guest. */
#include <stdint.h>

#define TOUCH_PAGES 256u
#define LOW (4u << 20)
#define COM1 0x3f8

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

void pvh_main(const struct hvm_start_info *si)
{
    const struct memmap *mm =
        (const struct memmap *)(uintptr_t)si->memmap_paddr;
    uint64_t top = 0;
    for (uint32_t i = 0; i < si->memmap_entries; i++) {
        uint64_t end = mm[i].addr + mm[i].size;
        if (mm[i].type == 1 && end > top && end <= (1ull << 32))
            top = end;
    }
    uint32_t stride = top > LOW + TOUCH_PAGES * 4096u
                          ? (uint32_t)((top - LOW) / TOUCH_PAGES) & ~4095u
                          : 4096u;
    for (uint32_t i = 0; i < TOUCH_PAGES; i++) {
        volatile uint32_t *p =
            (volatile uint32_t *)(uintptr_t)(LOW + i * stride);
        for (uint32_t k = 0; k < 1024; k++)
            p[k] = (i << 16 | k) * 2654435761u | 1;
    }
    __asm__ volatile("outb %0, %1" : : "a"((uint8_t)'R'), "Nd"((uint16_t)COM1));
}
