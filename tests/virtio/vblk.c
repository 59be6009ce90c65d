/* virtio-blk test guest: runs the script of requests the host left at
 * DATA_IN (struct vt_cmd) against the device, and leaves what it saw at
 * DATA_OUT (struct vt_out): every status byte and used length, whether the
 * data read matched the pattern written, a checksum of it, and the
 * device's registers and configuration.
 *
 * A request's header, data and status byte sit back to back in its buffer
 * (VT_BUF + index * VT_STRIDE), so any split into descriptors is a choice
 * of cut points: the script varies them to check that the device makes no
 * assumption about the layout (virtio 1.2 2.7.4, 5.2.6.1). */
#include "vdrv.h"

#define VIRTIO_ID_BLK 2
#define SECTOR 512u

VD_GUEST_ENTRY;

static struct vd_dev dev;
static struct vd_queue vq;
static struct vt_cmd *const cmd = (struct vt_cmd *)VT_DATA_IN;
static struct vt_out *const out = (struct vt_out *)VT_DATA_OUT;

static uint8_t *buf_of(uint32_t i)
{
    return (uint8_t *)(uint64_t)(VT_BUF + i * VT_STRIDE);
}

static int is_data_in(uint32_t type)
{
    return type == VT_T_IN || type == VT_T_GET_ID;
}

static uint32_t data_len(const struct vt_op *op)
{
    switch (op->type) {
    case VT_T_IN:
    case VT_T_OUT: return op->nsect * SECTOR;
    case VT_T_GET_ID: return op->nsect;
    case VT_T_DISCARD:
    case VT_T_WRITE_ZEROES: return 16; /* one segment */
    default: return 0;
    }
}

/* Probe, initialise, read the configuration, set up queue 0. */
static int setup(void)
{
    dev.base = cmd->base;
    out->version = vd_r32(&dev, VD_VERSION);
    out->device_id = vd_r32(&dev, VD_DEVICE_ID);
    out->vendor_id = vd_r32(&dev, VD_VENDOR_ID);
    int r = vd_probe(&dev, cmd->base, VIRTIO_ID_BLK);
    if (r == 0)
        r = vd_init(&dev, cmd->features);
    out->dev_features = dev.dev_features;
    out->drv_features = dev.drv_features;
    if (r)
        return r;
    out->config_gen = vd_read_config(&dev, 0, out->config, 64);
    vd_w32(&dev, VD_QUEUE_SEL, 0);
    out->queue_max = vd_r32(&dev, VD_QUEUE_NUM_MAX);
    if ((r = vd_queue_setup(&dev, &vq, 0, VT_QUEUES, VD_QSIZE_MAX)))
        return r;
    vd_driver_ok(&dev);
    return 0;
}

/* Fills request @i's buffer and describes it in @b; returns the number of
 * descriptors. */
static int build(uint32_t i, struct vd_buf *b)
{
    const struct vt_op *op = &cmd->ops[i];
    uint8_t *p = buf_of(i);
    uint32_t len = data_len(op);
    int wr = is_data_in(op->type);
    int seg = op->type == VT_T_DISCARD || op->type == VT_T_WRITE_ZEROES;

    *(uint32_t *)p = op->type;
    *(uint32_t *)(p + 4) = 0;
    *(uint64_t *)(p + 8) = seg ? 0 : op->sector;
    uint8_t *data = p + VT_DATA;
    if (op->type == VT_T_OUT) {
        for (uint32_t s = 0; s < op->nsect; s++)
            for (uint32_t k = 0; k < SECTOR; k++)
                data[s * SECTOR + k] = vt_pattern(op->seed, op->sector + s, k);
    } else if (seg) {
        *(uint64_t *)data = op->sector;
        *(uint32_t *)(data + 8) = op->nsect;
        *(uint32_t *)(data + 12) = (op->flags & VT_OP_UNMAP ? 1u : 0u) |
                                   (op->flags & VT_OP_BAD_FLAG ? 2u : 0u);
    } else {
        memset(data, 0xcc, len); /* so unwritten bytes show */
    }
    data[len] = 0xff; /* the status byte, until the device writes it */

    /* cut points over [0, VT_DATA + len + 1) */
    uint32_t cut[12], n = 0;
    cut[n++] = 0;
    if (op->flags & VT_OP_HDR_SPLIT)
        cut[n++] = 8;
    if (!(op->flags & VT_OP_MERGE && !wr && len))
        cut[n++] = VT_DATA;
    uint32_t pieces = op->ndata ? op->ndata : 1;
    for (uint32_t k = 1; k < pieces && len; k++)
        cut[n++] = VT_DATA + len * k / pieces;
    if (len && !(op->flags & VT_OP_MERGE && wr))
        cut[n++] = VT_DATA + len;
    cut[n] = VT_DATA + len + 1;
    int nb = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (cut[k + 1] == cut[k])
            continue;
        b[nb].addr = (uint64_t)p + cut[k];
        b[nb].len = cut[k + 1] - cut[k];
        b[nb].writable = cut[k] >= VT_DATA + len || (wr && cut[k] >= VT_DATA);
        nb++;
    }
    return nb;
}

/* A chain the device must refuse; see VT_T_BAD_*. */
static int build_bad(uint32_t i, struct vd_buf *b)
{
    const struct vt_op *op = &cmd->ops[i];
    uint8_t *p = buf_of(i);
    *(uint32_t *)p = VT_T_IN;
    *(uint32_t *)(p + 4) = 0;
    *(uint64_t *)(p + 8) = 0;
    b[0] = (struct vd_buf){(uint64_t)p, 16, 0};
    b[1] = (struct vd_buf){(uint64_t)p + VT_DATA, SECTOR, 1};
    b[2] = (struct vd_buf){(uint64_t)p + VT_DATA + SECTOR, 1, 1};
    p[VT_DATA + SECTOR] = 0xff;
    if (op->type == VT_T_BAD_ADDR)
        b[1].addr = 0x7f000000u;
    else if (op->type == VT_T_BAD_CROSS)
        b[1].addr = VT_RAM_END - SECTOR / 2;
    return 3;
}

static void peek(struct vt_res *r)
{
    r->peek[0] = vd_r32(&dev, VD_STATUS);
    r->peek[1] = vd_r32(&dev, VD_INT_STATUS);
    vd_w32(&dev, VD_QUEUE_SEL, 1); /* blk has one queue */
    r->peek[3] = vd_r32(&dev, VD_QUEUE_NUM_MAX);
    vd_w32(&dev, VD_QUEUE_SEL, 0);
    r->peek[2] = vd_r32(&dev, VD_QUEUE_READY);
}

/* Submits a bad chain and waits for DEVICE_NEEDS_RESET. */
static int bad_request(uint32_t i)
{
    struct vd_buf b[3];
    int n = build_bad(i, b);
    uint16_t head = vd_add_chain(&vq, 0, b, n);
    if (cmd->ops[i].type == VT_T_BAD_LOOP) {
        /* back to the data descriptor, not the head: a loop of writable
         * descriptors, which no rule on their order catches */
        vq.desc[2].flags |= VD_DESC_F_NEXT;
        vq.desc[2].next = (uint16_t)(head + 1);
    } else if (cmd->ops[i].type == VT_T_BAD_NEXT) {
        vq.desc[1].next = vq.size;
    }
    vd_publish(&vq);
    vd_notify(&dev, &vq);
    int r = vd_wait_status(&dev, VD_S_NEEDS_RESET);
    peek(&out->res[i]);
    uint32_t id, len;
    if (vd_get_used(&vq, &id, &len)) {
        out->res[i].done = 1;
        out->res[i].used_len = len;
    }
    out->res[i].status = buf_of(i)[VT_DATA + SECTOR];
    return r < 0 ? VT_E_NEEDS_RESET : 0;
}

/* Submits ops [i, end) under one notify and collects their used
 * elements. */
static int run_batch(uint32_t i, uint32_t end)
{
    uint16_t head_op[VD_QSIZE_MAX];
    uint32_t next = 0;
    for (uint32_t k = i; k < end; k++) {
        struct vd_buf b[12];
        int n = build(k, b);
        if (next + (uint32_t)n > vq.size)
            return VT_E_CMD;
        uint16_t head = vd_add_chain(&vq, (uint16_t)next, b, n);
        head_op[head] = (uint16_t)k;
        next += (uint32_t)n;
    }
    vd_publish(&vq);
    vd_notify(&dev, &vq);
    for (uint32_t got = 0; got < end - i; got++) {
        uint32_t id = 0, len = 0;
        if (vd_wait_used(&dev, &vq) < 0)
            return VT_E_TIMEOUT;
        vd_get_used(&vq, &id, &len);
        if (id >= next || head_op[id] < i || head_op[id] >= end ||
            out->res[head_op[id]].done)
            return VT_E_USED_ID;
        out->res[head_op[id]].done = 1;
        out->res[head_op[id]].used_len = len;
    }
    for (uint32_t k = i; k < end; k++) {
        const struct vt_op *op = &cmd->ops[k];
        struct vt_res *r = &out->res[k];
        uint32_t len = data_len(op);
        const uint8_t *data = buf_of(k) + VT_DATA;
        r->status = data[len];
        if (!is_data_in(op->type))
            continue;
        r->csum = vt_fnv(VT_FNV_INIT, data, len);
        if (op->type == VT_T_IN && op->seed)
            for (uint32_t s = 0; s < op->nsect; s++)
                for (uint32_t b = 0; b < SECTOR; b++)
                    r->mismatches += data[s * SECTOR + b] !=
                                     vt_pattern(op->seed, op->sector + s, b);
    }
    return 0;
}

static int run_script(void)
{
    int r;
    for (uint32_t i = 0; i < cmd->nops;) {
        const struct vt_op *op = &cmd->ops[i];
        out->detail = i;
        switch (op->type) {
        case VT_T_BAD_ADDR:
        case VT_T_BAD_CROSS:
        case VT_T_BAD_LOOP:
        case VT_T_BAD_NEXT:
            if ((r = bad_request(i)))
                return r;
            i++;
            continue;
        case VT_T_REINIT:
            if ((r = setup()))
                return r;
            i++;
            continue;
        case VT_T_STAGE:
            __asm__ volatile("outb %b0, $0x99" : : "a"(i) : "memory");
            i++;
            continue;
        case VT_T_PEEK:
            peek(&out->res[i]);
            i++;
            continue;
        case VT_T_BAD_NOTIFY:
            vd_w32(&dev, VD_QUEUE_NOTIFY, 1);
            vd_w32(&dev, VD_QUEUE_NOTIFY, 0xffff);
            vd_w32(&dev, VD_QUEUE_NOTIFY, 0xffffffffu);
            peek(&out->res[i]);
            i++;
            continue;
        }
        uint32_t end = i + 1;
        while (end < cmd->nops && cmd->ops[end - 1].flags & VT_OP_BATCH &&
               cmd->ops[end].type < VT_T_BAD_ADDR)
            end++;
        if ((r = run_batch(i, end)))
            return r;
        i = end;
    }
    return 0;
}

int guest_main(void)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < VT_MAX_OPS; i++)
        out->res[i].status = 0xff;
    vd_idt_init(VT_IDT);
    int r = VT_E_CMD;
    if (cmd->magic == VT_MAGIC && cmd->nops <= VT_MAX_OPS) {
        if (cmd->flags & VT_IRQ)
            vd_irq_init(VT_IDT, &dev, cmd->irq);
        dev.raw_features = !!(cmd->flags & VT_RAW_FEATURES);
        r = setup();
        if (r == 0)
            r = run_script();
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
