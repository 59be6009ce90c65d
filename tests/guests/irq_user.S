/* Interrupts through the local APIC, the IOAPIC and MSIs (run in a VM
 * created with HVC_VM_USER_IRQCHIP, or with the in-kernel chips). The mode
 * is the qword at DATA_IN + 8; rdi = 1 makes the vCPU the IPI test's AP.
 *   1  LAPIC timer, periodic, 1 ms (divide by 1 at the 1 GHz bus)
 *   2  LAPIC timer, TSC-deadline, re-armed DATA_IN + 16 TSC ticks ahead
 *   3  IOAPIC pin 5 edge -> 0x50, pin 6 level -> 0x51 (its handler writes
 *      port 0x12 so the host lowers the line, then EOIs); MSI -> 0x52
 *   4  IPIs: DATA_IN + 16 times, vector 0x61 to APIC 1 and wait for its
 *      0x62 back
 *   6  INIT and SIPI (vector 0x09) to APIC 1, which runs the real-mode
 *      trampoline at 0x9000, and wait for its mark
 *   7  x2APIC mode: the periodic timer of mode 1 and its EOIs through the
 *      MSRs (0x80f SVR, 0x83e divide, 0x832 LVT timer, 0x838 count, 0x80b
 *      EOI), the counter at +0; the x2APIC ID (MSR 0x802) at +56
 * Counters (qwords at DATA_OUT): +0 timer, +8 0x50, +16 0x51, +24 0x52,
 * +32 0x61 (AP), +40 0x62 (BSP), +48 the trampoline's mark, +56 the AP is
 * ready, +64 CPUID.1:EDX. The main line sleeps in HLT until the host sets DATA_IN (modes
 * 1-3), then reports 0x5a; an unexpected vector reports 0xef. */
#include "guest.h"
#define IDT 0x40000
#define APIC 0xfee00000
#define IOAPIC 0xfec00000
#define MODE (DATA_IN + 8)
#define DELTA (DATA_IN + 16)

    .code64
    .globl _start
_start:
    mov %rdi, %r15
    mov $1, %eax                    /* CPUID.1:EDX (bit 9: an APIC) at +64 */
    xor %ecx, %ecx
    cpuid
    mov %edx, DATA_OUT + 64
    mov $APIC, %r14                 /* r14, r13: the chips' pages, for good */
    mov $IOAPIC, %r13
    xor %edi, %edi
1:  lea unexpected(%rip), %rsi
    call set_gate
    inc %edi
    cmp $256, %edi
    jne 1b
    mov $0x40, %edi
    lea timer(%rip), %rsi
    call set_gate
    mov $0x41, %edi
    lea deadline(%rip), %rsi
    call set_gate
    mov $0x50, %edi
    lea edge(%rip), %rsi
    call set_gate
    mov $0x51, %edi
    lea level(%rip), %rsi
    call set_gate
    mov $0x52, %edi
    lea msi(%rip), %rsi
    call set_gate
    mov $0x61, %edi
    lea ipi(%rip), %rsi
    call set_gate
    mov $0x62, %edi
    lea ipi_back(%rip), %rsi
    call set_gate
    mov $0xff, %edi
    lea spurious(%rip), %rsi
    call set_gate
    lidt idtr(%rip)

    /* Both 8259s masked, LINT0 masked: only the APICs speak. */
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    movl $0x10000, 0x350(%r14)
    movl $0x1ff, 0xf0(%r14)        /* SVR: enabled, spurious 0xff */

    cmp $1, %r15
    je ap_main
    mov MODE, %rax
    cmp $1, %rax
    je periodic
    cmp $2, %rax
    je tscdl
    cmp $3, %rax
    je ioapic
    cmp $4, %rax
    je ipis
    cmp $6, %rax
    je initsipi
    cmp $7, %rax
    je x2apic
    DONE(0xee)
    jmp .

periodic:
    movl $0xb, 0x3e0(%r14)         /* divide by 1 */
    movl $0x20040, 0x320(%r14)     /* periodic, vector 0x40 */
    movl $1000000, 0x380(%r14)     /* 1 ms */
    jmp sleep

tscdl:
    movl $0x40041, 0x320(%r14)     /* TSC deadline, vector 0x41 */
    call arm
    jmp sleep

ioapic:
    movl $0x1a, (%r13)              /* pin 5, low: edge, vector 0x50 */
    movl $0x50, 0x10(%r13)
    movl $0x1b, (%r13)              /* high: APIC 0 */
    movl $0, 0x10(%r13)
    movl $0x1c, (%r13)              /* pin 6: level, vector 0x51 */
    movl $0x8051, 0x10(%r13)
    movl $0x1d, (%r13)
    movl $0, 0x10(%r13)
    mov $1, %al
    out %al, $PORT_DATA             /* tell the host: ready */
    jmp sleep

sleep:
    sti
2:  hlt
    cmpq $0, DATA_IN
    je 2b
    cli
    DONE(0x5a)
    jmp .

ipis:
3:  pause
    cmpq $0, DATA_OUT + 56          /* wait for the AP */
    je 3b
    xor %ebx, %ebx
4:  movl $0x01000000, 0x310(%r14)  /* to APIC 1 */
    movl $0x61, 0x300(%r14)        /* fixed, vector 0x61 */
    inc %rbx
5:  cli
    cmp DATA_OUT + 40, %rbx
    jbe 6f
    sti
    hlt
    jmp 5b
6:  cmp DELTA, %rbx
    jne 4b
    DONE(0x5a)
    jmp .

initsipi:
    movl $0x01000000, 0x310(%r14)
    movl $0x4500, 0x300(%r14)      /* INIT, assert */
    movl $0x01000000, 0x310(%r14)
    movl $0x0609, 0x300(%r14)      /* SIPI, page 0x9000 */
7:  pause
    cmpq $0x5151, DATA_OUT + 48
    jne 7b
    DONE(0x5a)
    jmp .

x2apic:
    lea x2_timer(%rip), %rsi
    mov $0x40, %edi
    call set_gate
    mov $0x1b, %ecx                 /* IA32_APIC_BASE: enable x2APIC */
    rdmsr
    or $0xc00, %eax
    wrmsr
    mov $0x802, %ecx
    rdmsr
    mov %rax, DATA_OUT + 56
    xor %edx, %edx
    mov $0x80f, %ecx
    mov $0x1ff, %eax
    wrmsr
    mov $0x83e, %ecx
    mov $0xb, %eax
    wrmsr
    mov $0x832, %ecx
    mov $0x20040, %eax
    wrmsr
    mov $0x838, %ecx
    mov $1000000, %eax
    wrmsr
    jmp sleep

ap_main:
    movq $1, DATA_OUT + 56
    sti
8:  hlt
    cmpq $0, DATA_IN
    je 8b
    cli
    DONE(0x5b)
    jmp .

/* Arms the TSC deadline DELTA ticks from now. */
arm:
    push %rax
    push %rcx
    push %rdx
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    add DELTA, %rax
    mov %rax, %rdx
    shr $32, %rdx
    mov $0x6e0, %ecx
    wrmsr
    pop %rdx
    pop %rcx
    pop %rax
    ret

/* edi = vector, rsi = handler: a present DPL-0 64-bit interrupt gate */
set_gate:
    mov %edi, %eax
    shl $4, %eax
    add $IDT, %rax
    mov %si, (%rax)
    movw $0x10, 2(%rax)
    movw $0x8e00, 4(%rax)
    mov %rsi, %rdx
    shr $16, %rdx
    mov %dx, 6(%rax)
    shr $16, %rdx
    mov %edx, 8(%rax)
    movl $0, 12(%rax)
    ret

timer:
    incq DATA_OUT
    movl $0, 0xb0(%r14)
    iretq

x2_timer:
    push %rax
    push %rcx
    push %rdx
    incq DATA_OUT
    xor %eax, %eax
    xor %edx, %edx
    mov $0x80b, %ecx
    wrmsr
    pop %rdx
    pop %rcx
    pop %rax
    iretq

deadline:
    incq DATA_OUT
    call arm
    movl $0, 0xb0(%r14)
    iretq

edge:
    incq DATA_OUT + 8
    movl $0, 0xb0(%r14)
    iretq

level:
    push %rax
    incq DATA_OUT + 16
    mov $1, %al
    out %al, $0x12                  /* the "device" lowers its line */
    pop %rax
    movl $0, 0xb0(%r14)
    iretq

msi:
    incq DATA_OUT + 24
    movl $0, 0xb0(%r14)
    iretq

ipi:
    incq DATA_OUT + 32
    movl $0, 0x310(%r14)           /* back to APIC 0 */
    movl $0x62, 0x300(%r14)
    movl $0, 0xb0(%r14)
    iretq

ipi_back:
    incq DATA_OUT + 40
    movl $0, 0xb0(%r14)
    iretq

spurious:
    iretq

unexpected:
    DONE(0xef)
    jmp .

idtr:
    .word 256 * 16 - 1
    .quad IDT

/* The AP's start after INIT/SIPI: real mode at 0x0900:0000. */
    .org 0x1000
    .code16
trampoline:
    mov $0x3000, %ax
    mov %ax, %ds
    movl $0x5151, 0x30              /* DATA_OUT + 48 */
    cli
9:  hlt
    jmp 9b
