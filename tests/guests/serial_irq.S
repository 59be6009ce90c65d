/* Interrupt-driven UART through the legacy 8259 PIC (IRQ 4 -> vector 0x24;
 * KVM's in-kernel PIC reaches the boot vCPU through its LAPIC's LINT0,
 * which comes out of reset as ExtINT). The identity-mapped long mode has
 * no IDT, so the guest builds one.
 *
 * The handler loops over IIR until it reports no interrupt, logging each
 * interrupt ID at DATA_OUT + LOG; on THRE it sends '1', then '2', then
 * turns ETBEI off; on received data it drains RBR to DATA_OUT + RXBUF.
 * The main line sleeps in HLT between steps:
 *   1. ETBEI and ERBFI on: three THRE interrupts (two bytes sent);
 *   2. sets PHASE = 1 and halts until the host injects two bytes;
 *   3. ETBEI on again: one more THRE interrupt.
 * Counters are qwords: ISRS (handler entries), NLOG, NTHRE, NRX. */
#include "guest.h"
#define COM1 0x3f8
#define OUTB(reg, val) mov $(COM1 + reg), %dx; mov $val, %al; out %al, %dx
#define IDT 0x40000
#define ISRS (DATA_OUT + 0x00)
#define NLOG (DATA_OUT + 0x08)
#define NTHRE (DATA_OUT + 0x10)
#define NRX (DATA_OUT + 0x18)
#define PHASE (DATA_OUT + 0x20)
#define LOG (DATA_OUT + 0x40)
#define RXBUF (DATA_OUT + 0x80)
#define MAX_LOG 32
/* Sleeps until the qword at addr reaches n; cli first so that an interrupt
 * cannot slip in between the test and the HLT (sti holds it off for one
 * instruction). */
#define WAIT_FOR(addr, n, l) \
l:  cli; cmpq $n, addr; jae l##_done; sti; hlt; jmp l; l##_done: sti

    .code64
    .globl _start
_start:
    /* IDT: every vector fails the test, except IRQ 4 and the spurious
     * IRQ 7 / IRQ 15 of the two PICs */
    xor %edi, %edi
1:  lea unexpected(%rip), %rsi
    call set_gate
    inc %edi
    cmp $256, %edi
    jne 1b
    mov $0x24, %edi
    lea uart_isr(%rip), %rsi
    call set_gate
    mov $0x27, %edi
    lea spurious(%rip), %rsi
    call set_gate
    mov $0x2f, %edi
    call set_gate
    lidt idtr(%rip)

    /* 8259 pair: ICW1 edge + ICW4, ICW2 vector bases 0x20 / 0x28, ICW3
     * cascade on IRQ 2, ICW4 8086 mode; then mask all but IRQ 4 */
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
    mov $0xef, %al
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1

    OUTB(3, 0x03)           /* LCR: 8N1 */
    OUTB(2, 0x07)           /* FCR: FIFOs on, trigger level 1 */
    OUTB(4, 0x0b)           /* MCR: DTR, RTS, OUT2 (the IRQ gate) */
    OUTB(1, 0x03)           /* IER: ERBFI, ETBEI -> THRE at once */
    WAIT_FOR(NTHRE, 3, thre3)
    movq $1, PHASE
    WAIT_FOR(NRX, 2, rx2)
    OUTB(1, 0x03)           /* ETBEI again while THR is empty */
    WAIT_FOR(NTHRE, 4, thre4)
    DONE(0x55)
    jmp .

/* edi = vector, rsi = handler: a present DPL-0 64-bit interrupt gate */
set_gate:
    mov %edi, %eax
    shl $4, %eax
    add $IDT, %rax
    mov %si, (%rax)
    movw $0x10, 2(%rax)     /* the flat code selector of hvc_vcpu_set_mode */
    movw $0x8e00, 4(%rax)
    mov %rsi, %rdx
    shr $16, %rdx
    mov %dx, 6(%rax)
    shr $16, %rdx
    mov %edx, 8(%rax)
    movl $0, 12(%rax)
    ret

uart_isr:
    push %rax
    push %rbx
    push %rdx
    incq ISRS
next:
    mov $(COM1 + 2), %dx    /* IIR */
    in %dx, %al
    test $0x01, %al
    jnz eoi
    and $0x0f, %al
    mov NLOG, %rbx
    cmp $MAX_LOG, %rbx      /* an interrupt storm fails the test */
    jae storm
    mov %al, LOG(%rbx)
    incq NLOG
    cmp $0x02, %al
    je thre
    cmp $0x04, %al
    je rx
    cmp $0x0c, %al
    je rx
    mov $(COM1 + 5), %dx    /* line or modem status: read to clear */
    in %dx, %al
    mov $(COM1 + 6), %dx
    in %dx, %al
    jmp next
thre:
    incq NTHRE
    mov NTHRE, %rax
    cmp $3, %rax
    jae 1f
    add $'0', %al           /* '1', '2' */
    mov $COM1, %dx
    out %al, %dx
    jmp next
1:  OUTB(1, 0x01)           /* nothing more to send: ERBFI only */
    jmp next
rx:
    mov $(COM1 + 5), %dx
    in %dx, %al
    test $0x01, %al
    jz next
    mov $COM1, %dx
    in %dx, %al
    mov NRX, %rbx
    and $0x3f, %rbx
    mov %al, RXBUF(%rbx)
    incq NRX
    jmp rx
eoi:
    mov $0x20, %al
    out %al, $0x20
    pop %rdx
    pop %rbx
    pop %rax
    iretq
storm:
    DONE(0xee)
    jmp .

spurious:
    iretq

unexpected:
    DONE(0xef)
    jmp .

idtr:
    .word 256 * 16 - 1
    .quad IDT
