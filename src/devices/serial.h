/* The 16550A's registers, receive FIFO and interrupt line (serial_regs.c),
 * shared with the device glue in serial.c, which adds locking, the host's
 * input and output, and creation.
 *
 * The register model is a plain state machine: its caller holds the
 * UART's lock around every call, and nothing here blocks or calls back
 * except hvc_vm_set_irq() (an ioctl). */
#ifndef HVCORE_DEVICES_SERIAL_H
#define HVCORE_DEVICES_SERIAL_H

#include <hvcore/vm.h>

#include <stdbool.h>
#include <stdint.h>

#define HVI_UART_PORTS 8
#define HVI_UART_FIFO 16

struct hvi_uart_regs {
    hvc_vm *vm;
    uint32_t irq;
    bool polled; /* the VM has no interrupt controller: never drive it */
    bool line;   /* level last driven on the GSI */

    uint8_t ier, lcr, mcr, fcr, msr, scr, dll, dlm;
    bool overrun;      /* LSR.OE, until LSR is read */
    bool thre_pending; /* the THRE interrupt, until IIR reports it */
    uint8_t rx[HVI_UART_FIFO];
    unsigned rx_head, rx_count;
};

/* Power-on state. Does not touch the line: call hvi_uart_update_irq(). */
void hvi_uart_reset(struct hvi_uart_regs *r);

/* A guest read of register @p reg (0..7), with its side effects. */
uint8_t hvi_uart_read(struct hvi_uart_regs *r, unsigned reg);

/* A guest write of @p v to register @p reg. Returns true when it put a byte
 * on the line (a THR write outside loopback), stored in *tx. */
bool hvi_uart_write(struct hvi_uart_regs *r, unsigned reg, uint8_t v,
                    uint8_t *tx);

/* Drives the GSI to the level the registers call for; call after any
 * change. */
void hvi_uart_update_irq(struct hvi_uart_regs *r);

/* A byte arriving on the line; false (and LSR.OE) when the receiver is
 * full. */
bool hvi_uart_rx_push(struct hvi_uart_regs *r, uint8_t byte);

/* Bytes the receiver holds at most: the FIFO, or one with FIFOs off. */
unsigned hvi_uart_rx_capacity(const struct hvi_uart_regs *r);

/* True in loopback, where the line input is disconnected. */
bool hvi_uart_loopback(const struct hvi_uart_regs *r);

#endif
