/* Echo: sets FCR to the byte at DATA_IN + 8, stops at PORT_UNCLAIMED_OUT
 * for the host to start sending (setting up the FIFOs empties them), then
 * reads the number of bytes given in the qword at DATA_IN, polling LSR.DR,
 * and sends each back, polling LSR.THRE. The host feeds input through
 * input_fd faster than the receiver can hold it. */
#include "guest.h"
#define COM1 0x3f8
#define OUTB(reg, val) mov $(COM1 + reg), %dx; mov $val, %al; out %al, %dx
    .code64
    .globl _start
_start:
    OUTB(3, 0x03)           /* LCR: 8N1 */
    OUTB(4, 0x03)           /* MCR: DTR, RTS */
    mov $(COM1 + 2), %dx    /* FCR */
    mov DATA_IN + 8, %al
    out %al, %dx
    out %al, $PORT_UNCLAIMED_OUT /* the host may start sending */
    mov DATA_IN, %rcx
1:  test %rcx, %rcx
    jz 4f
    mov $(COM1 + 5), %dx
2:  in %dx, %al             /* wait for data ready */
    test $0x01, %al
    jz 2b
    mov $COM1, %dx
    in %dx, %al
    mov %al, %bl
    mov $(COM1 + 5), %dx
3:  in %dx, %al             /* wait for THRE */
    test $0x20, %al
    jz 3b
    mov $COM1, %dx
    mov %bl, %al
    out %al, %dx
    dec %rcx
    jmp 1b
4:  DONE(0x54)
    jmp .
