/* A PVH guest (ELF32 with a XEN_ELFNOTE_PHYS32_ENTRY note): prints what it
 * finds through hvm_start_info (EBX at entry) and exits with 33. */
#include "lib.h"

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

struct module {
    uint64_t paddr, size, cmdline, reserved;
};

/* The note: name "Xen", type 18, the 32-bit entry. */
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
        "1:  hlt\n"
        "    jmp 1b\n"
        ".popsection\n");

static uint8_t stack[8192] __attribute__((used, aligned(16)));
__asm__(".set stack_top, stack + 8192");

void pvh_main(const struct hvm_start_info *si);

void pvh_main(const struct hvm_start_info *si)
{
    puts_("pvh: start_info at ");
    put_hex((uintptr_t)si);
    puts_(si->magic == 0x336ec578 ? " magic ok" : " BAD MAGIC");
    puts_(" version ");
    put_dec(si->version);
    puts_("\npvh: cmdline: [");
    puts_((const char *)(uintptr_t)si->cmdline_paddr);
    puts_("]\npvh: rsdp ");
    put_hex(si->rsdp_paddr);
    if (si->rsdp_paddr &&
        memeq((const void *)(uintptr_t)si->rsdp_paddr, "RSD PTR ", 8))
        puts_(" signature ok");
    puts_("\npvh: modules ");
    put_dec(si->nr_modules);
    if (si->nr_modules) {
        const struct module *m =
            (const struct module *)(uintptr_t)si->modlist_paddr;
        const char *data = (const char *)(uintptr_t)m->paddr;
        puts_(" size ");
        put_dec(m->size);
        puts_(" first bytes [");
        for (uint64_t i = 0; i < m->size && i < 16; i++)
            putc_(data[i]);
        puts_("]");
    }
    puts_("\npvh: memmap");
    const struct memmap *mm =
        (const struct memmap *)(uintptr_t)si->memmap_paddr;
    uint64_t ram = 0;
    for (uint32_t i = 0; i < si->memmap_entries; i++) {
        puts_(" ");
        put_hex(mm[i].addr);
        puts_("+");
        put_hex(mm[i].size);
        puts_(mm[i].type == 1 ? ":ram" : ":res");
        if (mm[i].type == 1)
            ram += mm[i].size;
    }
    puts_("\npvh: ram KiB ");
    put_dec(ram >> 10);
    puts_("\n");
    exit_(33);
}
