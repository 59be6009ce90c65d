/* A plain ELF32 SMP guest. The boot CPU finds the RSDP by the legacy scan
 * of 0xe0000-0xfffff, counts the enabled local APICs in the MADT, copies a
 * real-mode trampoline to 0x1000 and starts the other CPUs with
 * INIT/SIPI/SIPI through its local APIC. Each AP switches to 32-bit mode,
 * reports its APIC id and counts itself in. The boot CPU waits for all and
 * exits with the number of CPUs that came up. */
#include "lib.h"

#define LAPIC 0xfee00000u
#define LAPIC_ID 0x20
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define TRAMPOLINE 0x1000u
#define MAX_CPUS 64

static volatile uint32_t *lapic(uint32_t reg)
{
    return (volatile uint32_t *)(uintptr_t)(LAPIC + reg);
}

/* Entry: the loader starts the boot CPU in 32-bit flat mode at e_entry. */
__asm__(".pushsection .text.entry, \"ax\"\n"
        ".globl _start\n"
        "_start:\n"
        "    mov $bsp_stack_top, %esp\n"
        "    call bsp_main\n"
        "1:  hlt\n"
        "    jmp 1b\n"
        ".popsection\n");

/* The AP trampoline, assembled here and copied to TRAMPOLINE; it refers to
 * itself only by offsets from its start. */
__asm__(".pushsection .rodata\n"
        ".globl tramp_start, tramp_end\n"
        ".code16\n"
        "tramp_start:\n"
        "    cli\n"
        "    xor %ax, %ax\n"
        "    mov %ax, %ds\n"
        "    lgdtl (tramp_gdtr - tramp_start + 0x1000)\n"
        "    mov %cr0, %eax\n"
        "    or $1, %eax\n"
        "    mov %eax, %cr0\n"
        "    ljmpl $0x10, $(tramp_32 - tramp_start + 0x1000)\n"
        ".code32\n"
        "tramp_32:\n"
        "    mov $0x18, %ax\n"
        "    mov %ax, %ds\n"
        "    mov %ax, %es\n"
        "    mov %ax, %ss\n"
        "    mov $1, %eax\n"
        "    lock xadd %eax, ap_stack_next\n"
        "    shl $12, %eax\n"
        "    lea ap_stacks(%eax), %esp\n"
        "    mov $ap_main, %eax\n"
        "    call *%eax\n"
        "2:  hlt\n"
        "    jmp 2b\n"
        ".align 8\n"
        "tramp_gdt:\n"
        "    .quad 0, 0\n"
        "    .quad 0x00cf9b000000ffff\n" /* 0x10: flat 32-bit code */
        "    .quad 0x00cf93000000ffff\n" /* 0x18: flat data */
        "tramp_gdtr:\n"
        "    .word tramp_gdtr - tramp_gdt - 1\n"
        "    .long tramp_gdt - tramp_start + 0x1000\n"
        "tramp_end:\n"
        ".popsection\n");

extern const uint8_t tramp_start[], tramp_end[];
static uint8_t bsp_stack[8192] __attribute__((used, aligned(16)));
__asm__(".set bsp_stack_top, bsp_stack + 8192");
/* AP stacks: AP k (k >= 1 in arrival order) uses the 4 KiB ending at
 * ap_stacks + k * 4096. */
uint8_t ap_stacks[(MAX_CPUS + 1) * 4096] __attribute__((aligned(16)));
volatile uint32_t ap_stack_next = 1;
static volatile uint32_t cpus_up = 1;
static volatile uint32_t print_lock;

static void lock(void)
{
    while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
        ;
}

static void unlock(void)
{
    __atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

void ap_main(void);

void ap_main(void)
{
    uint32_t id = *lapic(LAPIC_ID) >> 24;
    lock();
    puts_("smp: CPU ");
    put_dec(id);
    puts_(" online\n");
    unlock();
    __atomic_add_fetch(&cpus_up, 1, __ATOMIC_SEQ_CST);
    for (;;)
        __asm__ volatile("cli; hlt");
}

static const uint8_t *find_rsdp(void)
{
    for (uintptr_t p = 0xe0000; p < 0x100000; p += 16)
        if (memeq((const void *)p, "RSD PTR ", 8))
            return (const uint8_t *)p;
    return 0;
}

/* Enabled local APICs in the MADT, through RSDP -> XSDT. */
static uint32_t count_cpus(void)
{
    const uint8_t *rsdp = find_rsdp();
    if (!rsdp)
        return 0;
    const uint8_t *xsdt =
        (const uint8_t *)(uintptr_t) * (const uint64_t *)(rsdp + 24);
    uint32_t len = *(const uint32_t *)(xsdt + 4);
    for (uint32_t off = 36; off + 8 <= len; off += 8) {
        const uint8_t *t =
            (const uint8_t *)(uintptr_t) * (const uint64_t *)(xsdt + off);
        if (!memeq(t, "APIC", 4))
            continue;
        uint32_t tlen = *(const uint32_t *)(t + 4), n = 0;
        for (uint32_t e = 44; e + 2 <= tlen; e += t[e + 1]) {
            if (t[e + 1] == 0)
                break;
            if (t[e] == 0 && (*(const uint32_t *)(t + e + 4) & 1))
                n++;
        }
        return n;
    }
    return 0;
}

static void delay(void)
{
    for (volatile int i = 0; i < 100000; i++)
        ;
}

void bsp_main(void);

void bsp_main(void)
{
    uint32_t n = count_cpus();
    puts_("smp: MADT lists ");
    put_dec(n);
    puts_(" CPUs\n");
    if (n == 0 || n > MAX_CPUS)
        exit_(200);
    uint8_t *t = (uint8_t *)TRAMPOLINE;
    for (const uint8_t *s = tramp_start; s < tramp_end; s++)
        *t++ = *s;
    *lapic(LAPIC_SVR) |= 0x100; /* software-enable the local APIC */
    if (n > 1) {
        *lapic(LAPIC_ICR_HI) = 0;
        *lapic(LAPIC_ICR_LO) = 0x000c4500; /* INIT, all but self */
        delay();
        for (int i = 0; i < 2; i++) {
            *lapic(LAPIC_ICR_LO) = 0x000c4600 | (TRAMPOLINE >> 12); /* SIPI */
            delay();
        }
    }
    for (uint32_t spins = 0; cpus_up < n && spins < 2000; spins++)
        delay();
    lock();
    puts_("smp: ");
    put_dec(cpus_up);
    puts_(" of ");
    put_dec(n);
    puts_(" CPUs up\n");
    unlock();
    exit_((uint8_t)cpus_up);
}
