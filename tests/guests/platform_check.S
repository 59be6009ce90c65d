/* Reads the platform devices back after tests/test_malicious_guest.c has
 * fuzzed and reset them: result n goes to byte DATA_OUT + n.
 *   0-6   UART LSR, IIR, IER, LCR, MCR, MSR, SCR
 *   7     UART SCR after writing 0x5a; then 'K' goes out on THR
 *   8-11  CMOS registers A, B, C, D
 *   12-19 CMOS memory-size bytes 0x15 0x16 0x17 0x18 0x30 0x31 0x34 0x35
 *   20    i8042 status (port 0x64)
 *   21    port 0x80 */
#include "guest.h"
#define COM1 0x3f8
#define UART(reg, n) mov $(COM1 + reg), %dx; in %dx, %al; mov %al, DATA_OUT + n
#define CMOS(reg, n) mov $reg, %al; out %al, $0x70; in $0x71, %al; \
    mov %al, DATA_OUT + n
    .code64
    .globl _start
_start:
    UART(5, 0)
    UART(2, 1)
    UART(1, 2)
    UART(3, 3)
    UART(4, 4)
    UART(6, 5)
    UART(7, 6)
    mov $COM1 + 7, %dx
    mov $0x5a, %al
    out %al, %dx
    UART(7, 7)
    mov $COM1, %dx
    mov $'K', %al
    out %al, %dx
    CMOS(0x0a, 8)
    CMOS(0x0b, 9)
    CMOS(0x0c, 10)
    CMOS(0x0d, 11)
    CMOS(0x15, 12)
    CMOS(0x16, 13)
    CMOS(0x17, 14)
    CMOS(0x18, 15)
    CMOS(0x30, 16)
    CMOS(0x31, 17)
    CMOS(0x34, 18)
    CMOS(0x35, 19)
    in $0x64, %al
    mov %al, DATA_OUT + 20
    in $0x80, %al
    mov %al, DATA_OUT + 21
    DONE(0x5c)
    jmp .
