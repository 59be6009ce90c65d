/* Counts PIT ticks: channel 0 in rate-generator mode at 1193182 / 1193 Hz
 * (1000.15 Hz) through the 8259 (IRQ 0 -> vector 0x20; KVM's PIC reaches
 * the boot vCPU through LINT0, ExtINT out of reset). The handler counts at
 * TICKS and acknowledges; the main line sleeps in HLT until the host sets
 * the qword at DATA_IN. An unexpected vector reports 0xef. */
#include "guest.h"
#define IDT 0x40000
#define TICKS DATA_OUT
#define PIT_DIVISOR 1193

    .code64
    .globl _start
_start:
    xor %edi, %edi
1:  lea unexpected(%rip), %rsi
    call set_gate
    inc %edi
    cmp $256, %edi
    jne 1b
    mov $0x20, %edi
    lea tick(%rip), %rsi
    call set_gate
    mov $0x27, %edi
    lea spurious(%rip), %rsi
    call set_gate
    mov $0x2f, %edi
    call set_gate
    lidt idtr(%rip)

    /* 8259 pair as in serial_irq.S; only IRQ 0 unmasked */
    mov $0x11, %al
    out %al, $0x20
    out %al, $0xa0
    mov $0x20, %al
    out %al, $0x21
    mov $0x28, %al
    out %al, $0xa1
    mov $0x04, %al
    out %al, $0x21
    mov $0x02, %al
    out %al, $0xa1
    mov $0x01, %al
    out %al, $0x21
    out %al, $0xa1
    mov $0xfe, %al
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1

    /* PIT channel 0, lobyte/hibyte, mode 2 */
    mov $0x34, %al
    out %al, $0x43
    mov $(PIT_DIVISOR & 0xff), %al
    out %al, $0x40
    mov $(PIT_DIVISOR >> 8), %al
    out %al, $0x40
    sti
2:  hlt
    cmpq $0, DATA_IN
    je 2b
    cli
    DONE(0x5a)
    jmp .

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

tick:
    push %rax
    incq TICKS
    mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq

spurious:
    iretq

unexpected:
    DONE(0xef)
    jmp .

idtr:
    .word 256 * 16 - 1
    .quad IDT
