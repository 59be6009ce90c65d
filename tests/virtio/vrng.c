/* virtio-rng test guest: asks for vt_cmd::nops buffers of VT_RNG_LEN
 * random bytes at VT_BUF + i * VT_STRIDE, all under one notify; odd
 * requests come as two descriptors of half the length, so that the device
 * has to fill a chain, not only its head. The host judges the bytes; the
 * guest reports each request's used length at DATA_OUT. */
#include "vdrv.h"

#define VIRTIO_ID_RNG 4

VD_GUEST_ENTRY;

static struct vd_dev dev;
static struct vd_queue vq;
static struct vt_cmd *const cmd = (struct vt_cmd *)VT_DATA_IN;
static struct vt_out *const out = (struct vt_out *)VT_DATA_OUT;

static int run(void)
{
    dev.base = cmd->base;
    out->device_id = vd_r32(&dev, VD_DEVICE_ID);
    int r = vd_probe(&dev, cmd->base, VIRTIO_ID_RNG);
    if (r == 0)
        r = vd_init(&dev, cmd->features);
    out->dev_features = dev.dev_features;
    out->drv_features = dev.drv_features;
    if (r)
        return r;
    vd_w32(&dev, VD_QUEUE_SEL, 0);
    out->queue_max = vd_r32(&dev, VD_QUEUE_NUM_MAX);
    if ((r = vd_queue_setup(&dev, &vq, 0, VT_QUEUES, VD_QSIZE_MAX)))
        return r;
    vd_driver_ok(&dev);
    if (cmd->nops * 2 > vq.size)
        return VT_E_CMD;

    uint16_t next = 0;
    for (uint32_t i = 0; i < cmd->nops; i++) {
        uint64_t p = VT_BUF + i * VT_STRIDE;
        memset((void *)p, 0, VT_RNG_LEN);
        struct vd_buf b[2] = {{p, VT_RNG_LEN, 1}, {0, 0, 1}};
        int n = 1;
        if (i % 2) {
            b[0].len = VT_RNG_LEN / 2;
            b[1] = (struct vd_buf){p + VT_RNG_LEN / 2, VT_RNG_LEN / 2, 1};
            n = 2;
        }
        uint16_t head = vd_add_chain(&vq, next, b, n);
        out->res[i].reserved = head; /* to match its used element */
        next = (uint16_t)(next + n);
    }
    vd_publish(&vq);
    vd_notify(&dev, &vq);
    for (uint32_t got = 0; got < cmd->nops; got++) {
        uint32_t id = 0, len = 0, i = 0;
        if (vd_wait_used(&dev, &vq) < 0)
            return VT_E_TIMEOUT;
        vd_get_used(&vq, &id, &len);
        while (i < cmd->nops && out->res[i].reserved != id)
            i++;
        if (i == cmd->nops || out->res[i].done)
            return VT_E_USED_ID;
        out->res[i].done = 1;
        out->res[i].used_len = len;
    }
    return 0;
}

int guest_main(void)
{
    memset(out, 0, sizeof(*out));
    vd_idt_init(VT_IDT);
    int r = VT_E_CMD;
    if (cmd->magic == VT_MAGIC && cmd->nops <= VT_MAX_OPS) {
        if (cmd->flags & VT_IRQ)
            vd_irq_init(VT_IDT, &dev, cmd->irq);
        r = run();
    }
    vd_irq_settle(&dev);
    out->status = vd_r32(&dev, VD_STATUS);
    out->irq_count = vd_irq.count;
    out->irq_status = vd_irq.status;
    out->isr_after = vd_r32(&dev, VD_INT_STATUS);
    out->error = (uint32_t)r;
    out->magic = VT_MAGIC;
    return r;
}
