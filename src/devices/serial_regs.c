/*
 * The 16550A register model: THR/RBR, IER, IIR/FCR, LCR, MCR, LSR, MSR,
 * scratch and the divisor latch, the receive FIFO, and the interrupt line.
 *
 * Decisions a reader needs to know:
 *
 * - Transmission is synchronous (serial.c writes the byte out before the
 *   guest's OUT completes), so THRE and TEMT are always set, the transmit
 *   FIFO is never occupied, and the THRE interrupt is due again as soon as
 *   a THR write returns.
 *
 * - The line models the chip's INTR pin behind the PC's OUT2 gate: high
 *   while an enabled interrupt is pending and MCR.OUT2 is set, low
 *   otherwise; hvc_vm_set_irq() is called only when that level changes.
 *   ISA IRQ 4 is edge-triggered in the PIC and IOAPIC, so, as on real
 *   hardware, an event that arrives while the line is already high makes
 *   no new edge: a driver reads IIR until it says "no interrupt" (Linux's
 *   8250 driver does). A guest that programs the line level-triggered gets
 *   correct level semantics too. We gate on the MCR.OUT2 bit even in
 *   loopback, where a discrete chip forces the OUT2 pin inactive: Super
 *   I/O parts keep interrupts working there, and it lets loopback
 *   self-tests run interrupt-driven. The GSI cannot be shared with another
 *   device (the two would fight over one level).
 *
 * - The character timeout (IIR 0x0C) is reported as soon as the receive
 *   FIFO holds data below its trigger level: input arrives in host-side
 *   bursts (one read(), one hvc_serial_receive()), so once a burst is in
 *   nothing more is coming "within four character times".
 *
 * - With FIFOs off (16450 mode) the receiver holds one byte. A byte that
 *   does not fit is dropped and sets LSR.OE; a 16450 would overwrite the
 *   held byte instead, but dropping keeps hvc_serial_receive()'s count
 *   honest and matches the 16550A's FIFO-mode overrun.
 *
 * - Break, parity and framing errors never happen on this line: LSR bits
 *   2-4 and 7 stay 0, and the line-status interrupt means an overrun.
 */
#include "serial.h"

/* Register offsets; with LCR.DLAB set, 0 and 1 are DLL and DLM. */
enum {
    REG_DATA = 0, /* RBR on read, THR on write */
    REG_IER = 1,
    REG_IIR = 2, /* IIR on read, FCR on write */
    REG_LCR = 3,
    REG_MCR = 4,
    REG_LSR = 5,
    REG_MSR = 6,
    REG_SCR = 7
};

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmit holding register empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK 0x0f  /* bits 4-7 read as 0 on a 16550A */

#define IIR_NONE 0x01
#define IIR_MSR 0x00
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define IIR_RLS 0x06
#define IIR_TIMEOUT 0x0c
#define IIR_FIFOS 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_KEEP 0xc9 /* trigger level, DMA mode, enable */

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f /* bits 5-7 read as 0 on a 16550A */

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
#define MSR_DELTAS 0x0f

unsigned hvi_uart_rx_capacity(const struct hvi_uart_regs *r)
{
    return (r->fcr & FCR_ENABLE) ? HVI_UART_FIFO : 1;
}

bool hvi_uart_loopback(const struct hvi_uart_regs *r)
{
    return r->mcr & MCR_LOOP;
}

static unsigned rx_trigger(const struct hvi_uart_regs *r)
{
    static const unsigned level[4] = {1, 4, 8, 14};
    return (r->fcr & FCR_ENABLE) ? level[r->fcr >> 6] : 1;
}

bool hvi_uart_rx_push(struct hvi_uart_regs *r, uint8_t byte)
{
    if (r->rx_count >= hvi_uart_rx_capacity(r)) {
        r->overrun = true;
        return false;
    }
    r->rx[(r->rx_head + r->rx_count++) % HVI_UART_FIFO] = byte;
    return true;
}

static uint8_t rx_pop(struct hvi_uart_regs *r)
{
    if (!r->rx_count)
        return 0;
    uint8_t b = r->rx[r->rx_head];
    r->rx_head = (r->rx_head + 1) % HVI_UART_FIFO;
    r->rx_count--;
    return b;
}

static void rx_clear(struct hvi_uart_regs *r)
{
    r->rx_head = r->rx_count = 0;
}

/* The highest-priority pending interrupt, as IIR bits 3:0. */
static uint8_t pending_id(const struct hvi_uart_regs *r)
{
    if ((r->ier & IER_ELSI) && r->overrun)
        return IIR_RLS;
    if ((r->ier & IER_ERBFI) && r->rx_count)
        return r->rx_count >= rx_trigger(r) ? IIR_RDA : IIR_TIMEOUT;
    if ((r->ier & IER_ETBEI) && r->thre_pending)
        return IIR_THRE;
    if ((r->ier & IER_EDSSI) && (r->msr & MSR_DELTAS))
        return IIR_MSR;
    return IIR_NONE;
}

void hvi_uart_update_irq(struct hvi_uart_regs *r)
{
    bool level = pending_id(r) != IIR_NONE && (r->mcr & MCR_OUT2);
    if (level == r->line)
        return;
    r->line = level;
    /* A failure other than "no irqchip" (probed at creation) cannot be
     * reported from a guest access; the guest sees a lost interrupt, as
     * with a broken wire, and polling drivers still work. */
    if (!r->polled)
        hvc_vm_set_irq(r->vm, r->irq, level);
}

/* The modem inputs: in loopback the outputs wired back (RTS->CTS,
 * DTR->DSR, OUT1->RI, OUT2->DCD); otherwise a line that is always
 * connected and ready (DCD, DSR, CTS) and never ringing. */
static uint8_t modem_inputs(const struct hvi_uart_regs *r)
{
    if (!(r->mcr & MCR_LOOP))
        return MSR_DCD | MSR_DSR | MSR_CTS;
    uint8_t m = r->mcr;
    return (m & MCR_RTS ? MSR_CTS : 0) | (m & MCR_DTR ? MSR_DSR : 0) |
           (m & MCR_OUT1 ? MSR_RI : 0) | (m & MCR_OUT2 ? MSR_DCD : 0);
}

/* Latches delta bits for inputs that changed; TERI only on RI's trailing
 * edge, as the datasheet has it. */
static void update_msr(struct hvi_uart_regs *r)
{
    uint8_t now = modem_inputs(r), was = r->msr & ~MSR_DELTAS;
    uint8_t changed = now ^ was, delta = 0;
    if (changed & MSR_CTS)
        delta |= MSR_DCTS;
    if (changed & MSR_DSR)
        delta |= MSR_DDSR;
    if (changed & MSR_DCD)
        delta |= MSR_DDCD;
    if ((was & MSR_RI) && !(now & MSR_RI))
        delta |= MSR_TERI;
    r->msr = now | (r->msr & MSR_DELTAS) | delta;
}

/* The datasheet's reset values; the divisor, which the chip leaves
 * undefined, is 12 (9600 baud). */
void hvi_uart_reset(struct hvi_uart_regs *r)
{
    r->ier = r->lcr = r->mcr = r->fcr = r->scr = 0;
    r->dll = 12;
    r->dlm = 0;
    r->overrun = false;
    r->thre_pending = false;
    rx_clear(r);
    r->msr = modem_inputs(r);
}

uint8_t hvi_uart_read(struct hvi_uart_regs *r, unsigned reg)
{
    bool dlab = r->lcr & LCR_DLAB;
    switch (reg) {
    case REG_DATA: return dlab ? r->dll : rx_pop(r);
    case REG_IER: return dlab ? r->dlm : r->ier;
    case REG_IIR: {
        uint8_t id = pending_id(r);
        /* Reading IIR acknowledges THRE only when it is what IIR shows. */
        if (id == IIR_THRE)
            r->thre_pending = false;
        return id | ((r->fcr & FCR_ENABLE) ? IIR_FIFOS : 0);
    }
    case REG_LCR: return r->lcr;
    case REG_MCR: return r->mcr;
    case REG_LSR: {
        uint8_t lsr = LSR_THRE | LSR_TEMT | (r->rx_count ? LSR_DR : 0) |
                      (r->overrun ? LSR_OE : 0);
        r->overrun = false;
        return lsr;
    }
    case REG_MSR: {
        uint8_t msr = r->msr;
        r->msr &= ~MSR_DELTAS;
        return msr;
    }
    default: return r->scr;
    }
}

static void write_fcr(struct hvi_uart_regs *r, uint8_t v)
{
    /* Switching the FIFOs on or off empties them. */
    if ((v ^ r->fcr) & FCR_ENABLE)
        rx_clear(r);
    if (!(v & FCR_ENABLE)) {
        /* The other bits are only programmed together with FCR0. */
        r->fcr = 0;
        return;
    }
    if (v & FCR_CLEAR_RX)
        rx_clear(r);
    /* Clearing the transmit FIFO has nothing to do: it is always empty. */
    r->fcr = v & FCR_KEEP;
}

bool hvi_uart_write(struct hvi_uart_regs *r, unsigned reg, uint8_t v,
                    uint8_t *tx)
{
    bool dlab = r->lcr & LCR_DLAB;
    switch (reg) {
    case REG_DATA:
        if (dlab) {
            r->dll = v;
            return false;
        }
        /* Sent at once: the holding register is empty again. */
        r->thre_pending = true;
        if (r->mcr & MCR_LOOP) {
            hvi_uart_rx_push(r, v);
            return false;
        }
        *tx = v;
        return true;
    case REG_IER:
        if (dlab) {
            r->dlm = v;
            break;
        }
        /* Enabling ETBEI while THR is empty raises THRE at once (Linux
         * tests for this at startup); disabling it drops the request. */
        if ((v ^ r->ier) & IER_ETBEI)
            r->thre_pending = v & IER_ETBEI;
        r->ier = v & IER_MASK;
        break;
    case REG_IIR: write_fcr(r, v); break;
    case REG_LCR: r->lcr = v; break;
    case REG_MCR:
        r->mcr = v & MCR_MASK;
        update_msr(r);
        break;
    case REG_SCR: r->scr = v; break;
    default: break; /* LSR and MSR writes are factory-test only */
    }
    return false;
}
