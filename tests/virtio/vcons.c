/* virtio-console test guest (one port, no multiport; virtio 1.2 5.3):
 *   1. sets up receiveq (0) and transmitq (1);
 *   2. with VT_RX_EARLY, posts VT_CONS_NRX receive buffers;
 *   3. transmits VT_CONS_HELLO as two chains, the second of two
 *      descriptors, and waits until both are used;
 *   4. stops for the host (OUT to port 0x99), which checks the output and
 *      feeds input;
 *   5. without VT_RX_EARLY, posts the receive buffers now;
 *   6. collects vt_cmd::nops input bytes at DATA_OUT + VT_CONS_RX, reposting
 *      each buffer once it is drained, and reports the count. */
#include "vdrv.h"

#define VIRTIO_ID_CONSOLE 3

VD_GUEST_ENTRY;

static struct vd_dev dev;
static struct vd_queue rxq, txq;
static struct vt_cmd *const cmd = (struct vt_cmd *)VT_DATA_IN;
static struct vt_out *const out = (struct vt_out *)VT_DATA_OUT;

#define RXBUF(k) (VT_BUF + (k)*64u)
#define TXBUF (VT_BUF + VT_STRIDE)

static int setup(void)
{
    dev.base = cmd->base;
    out->device_id = vd_r32(&dev, VD_DEVICE_ID);
    int r = vd_probe(&dev, cmd->base, VIRTIO_ID_CONSOLE);
    if (r == 0)
        r = vd_init(&dev, cmd->features);
    out->dev_features = dev.dev_features;
    out->drv_features = dev.drv_features;
    if (r)
        return r;
    /* cols, rows, max_nr_ports, emerg_wr */
    out->config_gen = vd_read_config(&dev, 0, out->config, 12);
    vd_w32(&dev, VD_QUEUE_SEL, 0);
    out->queue_max = vd_r32(&dev, VD_QUEUE_NUM_MAX);
    if ((r = vd_queue_setup(&dev, &rxq, 0, VT_QUEUES, VD_QSIZE_MAX)) ||
        (r = vd_queue_setup(&dev, &txq, 1, VT_QUEUES + VT_QUEUE_AREA,
                            VD_QSIZE_MAX)))
        return r;
    if (rxq.size < VT_CONS_NRX || txq.size < 3)
        return VT_E_QUEUE;
    vd_driver_ok(&dev);
    return 0;
}

static void post_rx(uint16_t k)
{
    struct vd_buf b = {RXBUF(k), VT_CONS_RXBUF, 1};
    vd_add_chain(&rxq, k, &b, 1);
}

static void post_all_rx(void)
{
    for (uint16_t k = 0; k < VT_CONS_NRX; k++)
        post_rx(k);
    vd_publish(&rxq);
    vd_notify(&dev, &rxq);
}

static int transmit(void)
{
    static const char hello[] = VT_CONS_HELLO;
    uint8_t *t = (uint8_t *)(uint64_t)TXBUF;
    memcpy(t, hello, sizeof(hello) - 1);
    /* "Hello from " | "virtio-" + "console!\n" */
    struct vd_buf a = {TXBUF, 11, 0};
    struct vd_buf b[2] = {{TXBUF + 11, 7, 0},
                          {TXBUF + 18, sizeof(hello) - 1 - 18, 0}};
    vd_add_chain(&txq, 0, &a, 1);
    vd_add_chain(&txq, 1, b, 2);
    vd_publish(&txq);
    vd_notify(&dev, &txq);
    for (int got = 0; got < 2; got++) {
        uint32_t id = 0, len = 0;
        if (vd_wait_used(&dev, &txq) < 0)
            return VT_E_TIMEOUT;
        vd_get_used(&txq, &id, &len);
        if (id != 0 && id != 1)
            return VT_E_USED_ID;
        out->res[id].done = 1;
        out->res[id].used_len = len;
    }
    return 0;
}

static int receive(void)
{
    uint8_t *dst = (uint8_t *)(uint64_t)(VT_DATA_OUT + VT_CONS_RX);
    uint32_t want = cmd->nops < VT_CONS_RX_MAX ? cmd->nops : VT_CONS_RX_MAX;
    while (out->rx_len < want) {
        uint32_t id = 0, len = 0;
        if (vd_wait_used(&dev, &rxq) < 0)
            return VT_E_TIMEOUT;
        vd_get_used(&rxq, &id, &len);
        if (id >= VT_CONS_NRX || len > VT_CONS_RXBUF)
            return VT_E_USED_ID;
        if (out->rx_count < VT_MAX_OPS - 2)
            out->res[2 + out->rx_count].used_len = len;
        out->rx_count++;
        for (uint32_t i = 0; i < len && out->rx_len < VT_CONS_RX_MAX; i++)
            dst[out->rx_len++] = ((uint8_t *)(uint64_t)RXBUF(id))[i];
        post_rx((uint16_t)id);
        vd_publish(&rxq);
        vd_notify(&dev, &rxq);
    }
    return 0;
}

static int run(void)
{
    int r = setup();
    if (r)
        return r;
    if (cmd->flags & VT_RX_EARLY)
        post_all_rx();
    if ((r = transmit()))
        return r;
    __asm__ volatile("outb %b0, $0x99" : : "a"(1) : "memory");
    if (!(cmd->flags & VT_RX_EARLY))
        post_all_rx();
    return receive();
}

int guest_main(void)
{
    memset(out, 0, sizeof(*out));
    vd_idt_init(VT_IDT);
    int r = VT_E_CMD;
    if (cmd->magic == VT_MAGIC)
        r = run();
    out->status = vd_r32(&dev, VD_STATUS);
    out->isr_after = vd_r32(&dev, VD_INT_STATUS);
    out->error = (uint32_t)r;
    out->magic = VT_MAGIC;
    return r;
}
