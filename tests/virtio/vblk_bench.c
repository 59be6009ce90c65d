/* virtio-blk benchmark guest (bench/virtio_blk.c): vt_cmd::count random
 * 4 KiB reads or writes (vt_cmd::write), 4 KiB-aligned, at offsets drawn
 * with vt_xorshift() from vt_cmd::seed, keeping vt_cmd::qd requests in
 * flight, polling the used ring or, with VT_IRQ, sleeping in HLT until the
 * device interrupts. It sets the device up, stops for the
 * host (OUT to port 0x99) so that set-up stays out of the timing, then
 * runs the requests and ends on port 0xf4. Request slot s uses descriptors
 * 3s..3s+2 and the buffer VT_BUF + s * SLOT. */
#include "vdrv.h"

#define VIRTIO_ID_BLK 2
#define IO_SIZE 4096u
#define SLOT 0x1100u
#define MAX_QD 64u

VD_GUEST_ENTRY;

static struct vd_dev dev;
static struct vd_queue vq;
static struct vt_cmd *const cmd = (struct vt_cmd *)VT_DATA_IN;
static struct vt_out *const out = (struct vt_out *)VT_DATA_OUT;
static uint64_t rng, blocks;

static uint8_t *slot_buf(uint32_t s)
{
    return (uint8_t *)(uint64_t)(VT_BUF + s * SLOT);
}

static void submit(uint32_t s)
{
    uint8_t *p = slot_buf(s);
    uint64_t block = vt_xorshift(&rng) % blocks;
    *(uint32_t *)p = cmd->write ? 1 : 0;
    *(uint32_t *)(p + 4) = 0;
    *(uint64_t *)(p + 8) = block * (IO_SIZE / 512);
    p[VT_DATA + IO_SIZE] = 0xff;
    struct vd_buf b[3] = {{(uint64_t)p, 16, 0},
                          {(uint64_t)p + VT_DATA, IO_SIZE, !cmd->write},
                          {(uint64_t)p + VT_DATA + IO_SIZE, 1, 1}};
    vd_add_chain(&vq, (uint16_t)(3 * s), b, 3);
}

static int setup(void)
{
    int r = vd_probe(&dev, cmd->base, VIRTIO_ID_BLK);
    if (r == 0)
        r = vd_init(&dev, 0);
    if (r)
        return r;
    uint64_t capacity = 0;
    vd_read_config(&dev, 0, (volatile uint8_t *)&capacity, 8);
    blocks = capacity / (IO_SIZE / 512);
    if ((r = vd_queue_setup(&dev, &vq, 0, VT_QUEUES, VD_QSIZE_MAX)))
        return r;
    if (blocks == 0 || cmd->qd == 0 || cmd->qd > MAX_QD ||
        3 * cmd->qd > vq.size)
        return VT_E_CMD;
    /* a polling driver asks for no used-buffer interrupts (2.7.10) */
    if (!dev.use_irq)
        vq.avail->flags = 1;
    vd_driver_ok(&dev);
    for (uint32_t s = 0; s < cmd->qd; s++)
        for (uint32_t i = 0; i < IO_SIZE; i++)
            slot_buf(s)[VT_DATA + i] = (uint8_t)(i * 7 + s);
    return 0;
}

static int run(void)
{
    uint64_t submitted = 0, completed = 0;
    rng = cmd->seed ? cmd->seed : 1;
    out->tsc_start = vd_rdtsc();
    for (uint32_t s = 0; s < cmd->qd && submitted < cmd->count; s++) {
        submit(s);
        submitted++;
    }
    vd_publish(&vq);
    vd_notify(&dev, &vq);
    while (completed < cmd->count) {
        if (vd_wait_used(&dev, &vq) < 0)
            return VT_E_TIMEOUT;
        uint32_t id, len;
        int more = 0;
        while (vd_get_used(&vq, &id, &len)) {
            uint32_t s = id / 3;
            if (id % 3 || s >= cmd->qd)
                return VT_E_USED_ID;
            uint8_t st = slot_buf(s)[VT_DATA + IO_SIZE];
            if (st != 0) {
                out->detail = st;
                return VT_E_CMD;
            }
            completed++;
            if (submitted < cmd->count) {
                submit(s);
                submitted++;
                more = 1;
            }
        }
        if (more) {
            vd_publish(&vq);
            vd_notify(&dev, &vq);
        }
    }
    out->tsc_end = vd_rdtsc();
    return 0;
}

int guest_main(void)
{
    memset(out, 0, sizeof(*out));
    vd_idt_init(VT_IDT);
    int r = VT_E_CMD;
    if (cmd->magic == VT_MAGIC) {
        if (cmd->flags & VT_IRQ)
            vd_irq_init(VT_IDT, &dev, cmd->irq);
        r = setup();
        if (r == 0) {
            __asm__ volatile("outb %b0, $0x99" : : "a"(0) : "memory");
            r = run();
        }
    }
    out->error = (uint32_t)r;
    out->magic = VT_MAGIC;
    return r;
}
