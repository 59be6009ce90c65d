/* Receiving bytes the host hands to the UART with hvc_serial_receive().
 * The guest stops at PORT_UNCLAIMED_OUT (al = stage) for the host to
 * inject, then reads LSR/IIR/RBR; result n goes to byte DATA_OUT + n, the
 * expected values are in tests/test_serial.c. Stages: 1 "abc" with the
 * FIFO at trigger level 4; 2 twenty bytes, an overrun; 3 three bytes with
 * FIFOs off (16450 mode); 4 a byte while in loopback (not received). */
#include "guest.h"
#define COM1 0x3f8
#define OUTB(reg, val) mov $(COM1 + reg), %dx; mov $val, %al; out %al, %dx
#define INB(reg) mov $(COM1 + reg), %dx; in %dx, %al
#define SAVE(reg, n) INB(reg); mov %al, DATA_OUT + n
#define STAGE(n) mov $n, %al; out %al, $PORT_UNCLAIMED_OUT
#define RBR 0
#define IER 1
#define IIR 2
#define LSR 5
#define MCR 4
    .code64
    .globl _start
_start:
    OUTB(IIR, 0x47)         /* FIFOs on, trigger level 4 */
    OUTB(IER, 0x05)         /* received data and line status */
    OUTB(MCR, 0x03)
    STAGE(1)                /* host: "abc" */
    SAVE(IIR, 0)            /* below the trigger: character timeout */
    SAVE(LSR, 1)
    SAVE(RBR, 2)
    SAVE(LSR, 3)
    SAVE(RBR, 4)
    SAVE(LSR, 5)
    SAVE(RBR, 6)
    SAVE(LSR, 7)
    SAVE(IIR, 8)
    STAGE(2)                /* host: 20 bytes, 16 fit */
    SAVE(IIR, 9)            /* line status first */
    SAVE(LSR, 10)           /* OE ... */
    SAVE(LSR, 11)           /* ... cleared by reading LSR */
    SAVE(IIR, 12)
    mov $COM1, %dx
    mov $DATA_OUT + 13, %rdi
    mov $16, %ecx
    cld
1:  in %dx, %al
    stosb
    loop 1b
    SAVE(LSR, 29)
    OUTB(IIR, 0x00)         /* FIFOs off: one holding register */
    STAGE(3)                /* host: "xyz", 1 fits */
    SAVE(IIR, 30)           /* the overrun outranks the data */
    SAVE(LSR, 31)
    SAVE(RBR, 32)
    SAVE(LSR, 33)
    OUTB(MCR, 0x10)         /* loopback: the line input is cut */
    STAGE(4)                /* host: "L", refused */
    SAVE(LSR, 34)
    OUTB(MCR, 0x00)
    DONE(0x53)
    jmp .
