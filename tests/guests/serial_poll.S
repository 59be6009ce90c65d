/* A polling 16550A driver: sets the UART up the way a real one does (8N1,
 * divisor 1, FIFOs on and cleared, DTR/RTS/OUT2), then prints a string,
 * waiting for LSR.THRE before each byte. tests/test_serial.c checks what
 * arrives at the host. */
#include "guest.h"
#define COM1 0x3f8
#define OUTB(reg, val) mov $(COM1 + reg), %dx; mov $val, %al; out %al, %dx
    .code64
    .globl _start
_start:
    OUTB(1, 0x00)           /* IER: no interrupts */
    OUTB(3, 0x80)           /* LCR: DLAB, to reach the divisor latch */
    OUTB(0, 0x01)           /* DLL = 1: 115200 baud */
    OUTB(1, 0x00)           /* DLM */
    OUTB(3, 0x03)           /* LCR: 8 data bits, no parity, 1 stop */
    OUTB(2, 0xc7)           /* FCR: FIFOs on, both cleared, trigger 14 */
    OUTB(4, 0x0b)           /* MCR: DTR, RTS, OUT2 */
    lea msg(%rip), %rsi
1:  movb (%rsi), %bl
    test %bl, %bl
    jz 3f
    mov $(COM1 + 5), %dx
2:  in %dx, %al             /* LSR: wait for THRE */
    test $0x20, %al
    jz 2b
    mov $COM1, %dx
    mov %bl, %al
    out %al, %dx
    inc %rsi
    jmp 1b
3:  DONE(0x50)
    jmp .
msg:
    .asciz "Hello from the 16550A!\r\n"
