/* 16550A register semantics, read back by a guest: reset values, scratch,
 * divisor latch, IER mask, FIFO bits of IIR, THRE interrupt acknowledge
 * and re-raise, loopback data and modem lines, modem-status and
 * line-status interrupts in IIR, a 16-bit access. Result n goes to byte DATA_OUT + n; the
 * expected values are in tests/test_serial.c, in the same order. Ends with
 * registers left non-default, for the reset test. */
#include "guest.h"
#define COM1 0x3f8
#define OUTB(reg, val) mov $(COM1 + reg), %dx; mov $val, %al; out %al, %dx
#define INB(reg) mov $(COM1 + reg), %dx; in %dx, %al
#define SAVE(reg, n) INB(reg); mov %al, DATA_OUT + n
#define RBR 0
#define IER 1
#define IIR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7
    .code64
    .globl _start
_start:
    /* power-on values */
    SAVE(LSR, 0)
    SAVE(IIR, 1)
    SAVE(MSR, 2)
    SAVE(IER, 3)
    SAVE(LCR, 4)
    SAVE(MCR, 5)
    SAVE(SCR, 6)
    /* scratch */
    OUTB(SCR, 0x5a)
    SAVE(SCR, 7)
    OUTB(SCR, 0xa5)
    SAVE(SCR, 8)
    /* divisor latch behind DLAB; IER survives underneath */
    OUTB(IER, 0x05)
    OUTB(LCR, 0x83)
    OUTB(RBR, 0x34)
    OUTB(IER, 0x12)
    SAVE(RBR, 9)
    SAVE(IER, 10)
    SAVE(LCR, 11)
    OUTB(LCR, 0x03)
    SAVE(IER, 12)
    SAVE(RBR, 13)           /* nothing received */
    OUTB(IER, 0xff)
    SAVE(IER, 14)           /* only bits 0-3 exist */
    OUTB(IER, 0x00)
    /* FIFO enable shows in IIR bits 7:6 */
    OUTB(IIR, 0x07)
    SAVE(IIR, 15)
    OUTB(IIR, 0x00)
    SAVE(IIR, 16)
    OUTB(IIR, 0xc7)
    SAVE(IIR, 17)
    /* THRE: raised by enabling ETBEI, acknowledged by reading IIR, raised
     * again by re-enabling it and by a THR write ('T' is output) */
    OUTB(IER, 0x02)
    SAVE(IIR, 18)
    SAVE(IIR, 19)
    OUTB(IER, 0x00)
    OUTB(IER, 0x02)
    SAVE(IIR, 20)
    OUTB(RBR, 'T')
    SAVE(IIR, 21)
    OUTB(IER, 0x03)         /* ETBEI stays on: no new THRE */
    SAVE(IIR, 22)
    OUTB(IER, 0x00)
    /* loopback: MSR follows MCR (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD) */
    OUTB(MCR, 0x10)
    SAVE(MSR, 23)
    SAVE(MSR, 24)
    OUTB(MCR, 0x1f)
    SAVE(MSR, 25)
    SAVE(MSR, 26)
    SAVE(MCR, 27)
    OUTB(MCR, 0x1a)         /* Linux's probe: LOOP | OUT2 | RTS */
    SAVE(MSR, 28)
    /* loopback data: THR to RBR, not to the output */
    OUTB(RBR, 'Q')
    SAVE(LSR, 29)
    SAVE(RBR, 30)
    SAVE(LSR, 31)
    OUTB(RBR, 'x')
    OUTB(RBR, 'y')
    OUTB(RBR, 'z')
    SAVE(RBR, 32)
    SAVE(RBR, 33)
    SAVE(RBR, 34)
    /* modem-status interrupt */
    OUTB(IER, 0x08)
    SAVE(IIR, 35)
    OUTB(MCR, 0x1b)         /* DTR on: DSR rises */
    SAVE(IIR, 36)
    SAVE(MSR, 37)
    SAVE(IIR, 38)
    OUTB(IER, 0x00)
    OUTB(MCR, 0xff)
    SAVE(MCR, 39)           /* bits 5-7 do not exist */
    OUTB(MCR, 0x00)
    SAVE(MSR, 40)
    OUTB(LSR, 0x00)         /* LSR writes are ignored */
    SAVE(LSR, 41)
    /* line-status interrupt: a loopback overrun with FIFOs off (a single
     * holding register) */
    OUTB(IIR, 0x00)
    OUTB(MCR, 0x10)
    OUTB(RBR, 'a')
    OUTB(RBR, 'b')
    OUTB(IER, 0x05)
    SAVE(IIR, 42)
    SAVE(LSR, 43)
    SAVE(IIR, 44)
    SAVE(RBR, 45)
    SAVE(IIR, 46)
    /* a 16-bit access reaches two registers, as on the ISA bus */
    mov $(COM1 + LCR), %dx
    mov $0x0b03, %ax        /* LCR = 0x03, MCR = 0x0b */
    out %ax, %dx
    in %dx, %ax
    mov %ax, DATA_OUT + 47
    /* leave a mess for the reset test */
    OUTB(IIR, 0xc7)
    OUTB(MCR, 0x0b)
    OUTB(IER, 0x0f)
    OUTB(LCR, 0x9b)
    DONE(0x52)
    jmp .
