/* A plain ELF64 guest booted the Linux 64-bit way: RSI = boot_params.
 * Prints the command line, initrd and e820 map it finds there; exits 64. */
#include "lib.h"

__asm__(".pushsection .text.entry, \"ax\"\n"
        ".globl _start\n"
        "_start:\n"
        "    lea stack_top(%rip), %rsp\n"
        "    mov %rsi, %rdi\n"
        "    call linux_main\n"
        "1:  hlt\n"
        "    jmp 1b\n"
        ".popsection\n");

static uint8_t stack[8192] __attribute__((used, aligned(16)));
__asm__(".set stack_top, stack + 8192");

struct e820 {
    uint64_t addr, size;
    uint32_t type;
} __attribute__((packed));

static uint32_t rd32(const uint8_t *bp, unsigned off)
{
    return *(const uint32_t *)(bp + off);
}

void linux_main(const uint8_t *bp);

void linux_main(const uint8_t *bp)
{
    puts_("linux64: boot_params at ");
    put_hex((uintptr_t)bp);
    puts_(memeq(bp + 0x202, "HdrS", 4) ? " HdrS ok" : " NO HdrS");
    puts_(" loader ");
    put_hex(bp[0x210]);
    uint64_t cmd = rd32(bp, 0x228) | (uint64_t)rd32(bp, 0xc8) << 32;
    puts_("\nlinux64: cmdline: [");
    puts_((const char *)(uintptr_t)cmd);
    puts_("]\nlinux64: rsdp ");
    put_hex(*(const uint64_t *)(bp + 0x70));
    uint64_t rd = rd32(bp, 0x218) | (uint64_t)rd32(bp, 0xc0) << 32;
    uint64_t rs = rd32(bp, 0x21c) | (uint64_t)rd32(bp, 0xc4) << 32;
    puts_("\nlinux64: initrd ");
    put_dec(rs);
    if (rs) {
        puts_(" bytes [");
        for (uint64_t i = 0; i < rs && i < 16; i++)
            putc_(((const char *)(uintptr_t)rd)[i]);
        puts_("]");
    }
    puts_("\nlinux64: e820");
    const struct e820 *e = (const struct e820 *)(bp + 0x2d0);
    uint64_t ram = 0;
    for (unsigned i = 0; i < bp[0x1e8]; i++) {
        puts_(" ");
        put_hex(e[i].addr);
        puts_("+");
        put_hex(e[i].size);
        puts_(e[i].type == 1 ? ":ram" : ":res");
        if (e[i].type == 1)
            ram += e[i].size;
    }
    puts_("\nlinux64: ram KiB ");
    put_dec(ram >> 10);
    puts_("\n");
    exit_(64);
}
