/* A minimal virtio-mmio (version 2) driver for freestanding 64-bit test
 * guests, written from the virtio 1.2 specification: probe (4.2.3.1),
 * initialisation (3.1.1), split virtqueues (2.7), notification and used
 * buffers, and an interrupt path through the 8259 PIC. Header-only so that
 * each guest stays one translation unit (cmake/guest.cmake builds one
 * source into a flat binary and tracks the headers next to it).
 *
 * The guests run identity-mapped in long mode (hvc_vcpu_set_mode), so guest
 * physical and virtual addresses are the same and buffers are passed to the
 * device as plain pointers cast to integers. */
#ifndef VDRV_H
#define VDRV_H

/* No SSE in guest code: KVM may have to emulate any guest instruction
 * (every MMIO access; on some nested hosts every instruction, RAM accesses
 * included), and its emulator fails on most SSE forms (e.g. a movd from
 * memory), which gcc would otherwise use for struct copies and packing. */
#pragma GCC target("general-regs-only")

#include "proto.h"

#include <stddef.h>
#include <stdint.h>

/* Register offsets, virtio 1.2 4.2.2. */
#define VD_MAGIC 0x000
#define VD_VERSION 0x004
#define VD_DEVICE_ID 0x008
#define VD_VENDOR_ID 0x00c
#define VD_DEV_FEATURES 0x010
#define VD_DEV_FEATURES_SEL 0x014
#define VD_DRV_FEATURES 0x020
#define VD_DRV_FEATURES_SEL 0x024
#define VD_QUEUE_SEL 0x030
#define VD_QUEUE_NUM_MAX 0x034
#define VD_QUEUE_NUM 0x038
#define VD_QUEUE_READY 0x044
#define VD_QUEUE_NOTIFY 0x050
#define VD_INT_STATUS 0x060
#define VD_INT_ACK 0x064
#define VD_STATUS 0x070
#define VD_QUEUE_DESC_LO 0x080
#define VD_QUEUE_DESC_HI 0x084
#define VD_QUEUE_DRIVER_LO 0x090
#define VD_QUEUE_DRIVER_HI 0x094
#define VD_QUEUE_DEVICE_LO 0x0a0
#define VD_QUEUE_DEVICE_HI 0x0a4
#define VD_CONFIG_GEN 0x0fc
#define VD_CONFIG 0x100

#define VD_MAGIC_VALUE 0x74726976u /* "virt" */

/* Device status bits, 2.1. */
#define VD_S_ACKNOWLEDGE 1u
#define VD_S_DRIVER 2u
#define VD_S_DRIVER_OK 4u
#define VD_S_FEATURES_OK 8u
#define VD_S_NEEDS_RESET 64u
#define VD_S_FAILED 128u

/* InterruptStatus bits, 4.2.2. */
#define VD_INT_USED 1u
#define VD_INT_CONFIG 2u

#define VD_F_VERSION_1 (1ull << 32)

/* Split virtqueue layout, 2.7. */
#define VD_DESC_F_NEXT 1u
#define VD_DESC_F_WRITE 2u
#define VD_QSIZE_MAX 256u

struct vd_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vd_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[VD_QSIZE_MAX];
};

struct vd_used_elem {
    uint32_t id;
    uint32_t len;
};

struct vd_used {
    uint16_t flags;
    uint16_t idx;
    struct vd_used_elem ring[VD_QSIZE_MAX];
};

struct vd_dev {
    uint64_t base;
    uint64_t dev_features;
    uint64_t drv_features;
    int use_irq;      /* vd_wait_used() sleeps for the interrupt */
    int raw_features; /* vd_init() accepts what it is asked, offered or not */
};

struct vd_queue {
    uint16_t index;
    uint16_t size;
    uint16_t avail_shadow; /* next avail->idx to publish */
    uint16_t last_used;    /* used->idx as far as we consumed it */
    volatile struct vd_desc *desc;
    volatile struct vd_avail *avail;
    volatile struct vd_used *used;
};

/* One buffer of a chain. */
struct vd_buf {
    uint64_t addr;
    uint32_t len;
    uint32_t writable; /* device-writable (VIRTQ_DESC_F_WRITE) */
};

/* gcc may turn loops or struct copies into calls to these even in
 * freestanding code, so every guest gets them. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n)
{
    void *r = d;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return r;
}
void *memcpy(void *d, const void *s, size_t n)
{
    void *r = d;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return r;
}

/* x86 keeps stores in order and loads in order, so the ring protocol needs
 * only compiler barriers between them; a full fence where a store must be
 * seen before a later load. */
#define vd_barrier() __asm__ volatile("" : : : "memory")
#define vd_mb() __asm__ volatile("mfence" : : : "memory")

static inline void vd_outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint64_t vd_rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static inline void vd_pause(void)
{
    __asm__ volatile("pause");
}

/* Registers are 32-bit wide and must be accessed as such (4.2.2.2). */
static inline uint32_t vd_r32(const struct vd_dev *d, uint32_t off)
{
    return *(volatile uint32_t *)(d->base + off);
}

static inline void vd_w32(const struct vd_dev *d, uint32_t off, uint32_t v)
{
    *(volatile uint32_t *)(d->base + off) = v;
}

static inline uint8_t vd_config8(const struct vd_dev *d, uint32_t off)
{
    return *(volatile uint8_t *)(d->base + VD_CONFIG + off);
}

/* Debug text on port 0xe9; the tests collect it for their failure
 * messages. */
static inline void vd_puts(const char *s)
{
    while (*s)
        vd_outb(0xe9, (uint8_t)*s++);
}

static inline void vd_puthex(uint64_t v)
{
    char b[19] = "0x";
    for (int i = 0; i < 16; i++)
        b[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
    b[18] = 0;
    vd_puts(b);
}

/* Spin bound for polling: about 5-10 s of TSC ticks on current hosts, far
 * longer than a request takes, short of the host's watchdog. */
#define VD_SPIN_TICKS (1ull << 34)

/* Checks the magic, version and device id (4.2.3.1.1). Returns 0 or
 * VT_E_MAGIC, VT_E_VERSION, VT_E_DEVICE. */
static inline int vd_probe(struct vd_dev *d, uint64_t base, uint32_t device_id)
{
    d->base = base;
    d->dev_features = d->drv_features = 0;
    if (vd_r32(d, VD_MAGIC) != VD_MAGIC_VALUE)
        return VT_E_MAGIC;
    if (vd_r32(d, VD_VERSION) != 2)
        return VT_E_VERSION;
    if (vd_r32(d, VD_DEVICE_ID) != device_id)
        return VT_E_DEVICE;
    return 0;
}

/* Writes 0 to Status and waits until it reads 0 (4.2.3.1.2: the driver
 * MUST wait for the reset to complete). Returns 0 or -1 on timeout. */
static inline int vd_reset(struct vd_dev *d)
{
    vd_w32(d, VD_STATUS, 0);
    uint64_t t0 = vd_rdtsc();
    while (vd_r32(d, VD_STATUS) != 0)
        if (vd_rdtsc() - t0 > VD_SPIN_TICKS)
            return -1;
    return 0;
}

static inline void vd_set_status(struct vd_dev *d, uint32_t bits)
{
    vd_w32(d, VD_STATUS, vd_r32(d, VD_STATUS) | bits);
}

/* Device initialisation up to FEATURES_OK (3.1.1 steps 1-6): accepts
 * VERSION_1 and whatever of @want the device offers. Returns 0,
 * VT_E_RESET, VT_E_NO_V1 or VT_E_FEATURES_OK. */
static inline int vd_init(struct vd_dev *d, uint64_t want)
{
    if (vd_reset(d) < 0)
        return VT_E_RESET;
    vd_set_status(d, VD_S_ACKNOWLEDGE);
    vd_set_status(d, VD_S_DRIVER);
    vd_w32(d, VD_DEV_FEATURES_SEL, 0);
    uint64_t f = vd_r32(d, VD_DEV_FEATURES);
    vd_w32(d, VD_DEV_FEATURES_SEL, 1);
    f |= (uint64_t)vd_r32(d, VD_DEV_FEATURES) << 32;
    d->dev_features = f;
    if (!(f & VD_F_VERSION_1) && !d->raw_features) {
        vd_set_status(d, VD_S_FAILED);
        return VT_E_NO_V1;
    }
    d->drv_features = d->raw_features ? want : f & (want | VD_F_VERSION_1);
    vd_w32(d, VD_DRV_FEATURES_SEL, 0);
    vd_w32(d, VD_DRV_FEATURES, (uint32_t)d->drv_features);
    vd_w32(d, VD_DRV_FEATURES_SEL, 1);
    vd_w32(d, VD_DRV_FEATURES, (uint32_t)(d->drv_features >> 32));
    vd_set_status(d, VD_S_FEATURES_OK);
    if (!(vd_r32(d, VD_STATUS) & VD_S_FEATURES_OK)) {
        vd_set_status(d, VD_S_FAILED);
        return VT_E_FEATURES_OK;
    }
    return 0;
}

/* Sets up virtqueue @index in the VT_QUEUE_AREA-sized area at @mem with
 * up to @size entries (4.2.3.2). Returns 0, VT_E_QUEUE (QueueNumMax is 0
 * or the queue is already live) or VT_E_QUEUE_READY. */
static inline int vd_queue_setup(struct vd_dev *d, struct vd_queue *q,
                                 uint16_t index, uint64_t mem, uint32_t size)
{
    vd_w32(d, VD_QUEUE_SEL, index);
    if (vd_r32(d, VD_QUEUE_READY) != 0)
        return VT_E_QUEUE;
    uint32_t max = vd_r32(d, VD_QUEUE_NUM_MAX);
    if (max == 0)
        return VT_E_QUEUE;
    if (size > max)
        size = max;
    if (size > VD_QSIZE_MAX)
        size = VD_QSIZE_MAX;
    q->index = index;
    q->size = (uint16_t)size;
    q->avail_shadow = q->last_used = 0;
    /* descriptor table 16-aligned, avail 2-aligned, used 4-aligned (2.7):
     * page-aligned here, one page each */
    q->desc = (volatile struct vd_desc *)mem;
    q->avail = (volatile struct vd_avail *)(mem + 0x1000);
    q->used = (volatile struct vd_used *)(mem + 0x2000);
    memset((void *)mem, 0, 0x3000);
    vd_w32(d, VD_QUEUE_NUM, size);
    uint64_t a[3] = {mem, mem + 0x1000, mem + 0x2000};
    static const uint32_t regs[3] = {VD_QUEUE_DESC_LO, VD_QUEUE_DRIVER_LO,
                                     VD_QUEUE_DEVICE_LO};
    for (int i = 0; i < 3; i++) {
        vd_w32(d, regs[i], (uint32_t)a[i]);
        vd_w32(d, regs[i] + 4, (uint32_t)(a[i] >> 32));
    }
    vd_barrier();
    vd_w32(d, VD_QUEUE_READY, 1);
    return vd_r32(d, VD_QUEUE_READY) == 1 ? 0 : VT_E_QUEUE_READY;
}

static inline void vd_driver_ok(struct vd_dev *d)
{
    vd_set_status(d, VD_S_DRIVER_OK);
}

/* Writes a chain of @n buffers into descriptors @first.. and queues its
 * head in the available ring, unpublished until vd_publish(). Returns the
 * head's index. The caller keeps chains from overlapping. */
static inline uint16_t vd_add_chain(struct vd_queue *q, uint16_t first,
                                    const struct vd_buf *b, int n)
{
    for (int i = 0; i < n; i++) {
        uint16_t k = (uint16_t)((first + i) % q->size);
        q->desc[k].addr = b[i].addr;
        q->desc[k].len = b[i].len;
        q->desc[k].flags = (uint16_t)((b[i].writable ? VD_DESC_F_WRITE : 0) |
                                      (i + 1 < n ? VD_DESC_F_NEXT : 0));
        q->desc[k].next = (uint16_t)((first + i + 1) % q->size);
    }
    q->avail->ring[q->avail_shadow % q->size] = first;
    q->avail_shadow++;
    return first;
}

/* Makes the queued heads visible: ring entries before the index (2.7.13). */
static inline void vd_publish(struct vd_queue *q)
{
    vd_barrier();
    q->avail->idx = q->avail_shadow;
}

static inline void vd_notify(struct vd_dev *d, struct vd_queue *q)
{
    vd_mb();
    vd_w32(d, VD_QUEUE_NOTIFY, q->index);
}

/* Takes one used element if there is one: returns 1 and fills @id and
 * @len, else 0. */
static inline int vd_get_used(struct vd_queue *q, uint32_t *id, uint32_t *len)
{
    if (q->used->idx == q->last_used)
        return 0;
    vd_barrier(); /* the element after the index (2.7.14) */
    volatile struct vd_used_elem *e = &q->used->ring[q->last_used % q->size];
    *id = e->id;
    *len = e->len;
    q->last_used++;
    return 1;
}

/* --- Interrupts: an IDT and the 8259 pair, as tests/guests/serial_irq.S
 * does (KVM's PIC reaches the boot vCPU through LINT0 in ExtINT mode). */

struct vd_irq_state {
    struct vd_dev *dev; /* whose InterruptStatus the handler reads */
    volatile uint32_t count;
    volatile uint32_t status; /* or of every InterruptStatus seen */
    uint32_t line;
};
static struct vd_irq_state vd_irq;

/* Runs in the handler: reads InterruptStatus, acknowledges what it saw
 * (4.2.3.4), and ends the interrupt at the PIC. It must not touch SSE
 * registers, which the stub does not save: the pragma above sees to it. */
void vd_irq_handler(void);
__attribute__((used)) void vd_irq_handler(void)
{
    if (vd_irq.dev) {
        uint32_t s = vd_r32(vd_irq.dev, VD_INT_STATUS);
        if (s)
            vd_w32(vd_irq.dev, VD_INT_ACK, s);
        vd_irq.status |= s;
    }
    vd_irq.count++;
    if (vd_irq.line >= 8)
        vd_outb(0xa0, 0x20);
    vd_outb(0x20, 0x20);
}

/* The stubs: save the caller-saved registers the C handler may clobber
 * (nine pushes keep the stack 16-byte aligned at the call); any other
 * vector ends the test with VT_E_FAULT on port 0xf4. */
__asm__(".text\n"
        "vd_irq_stub:\n"
        "  push %rax\n push %rcx\n push %rdx\n push %rsi\n push %rdi\n"
        "  push %r8\n push %r9\n push %r10\n push %r11\n"
        "  cld\n"
        "  call vd_irq_handler\n"
        "  pop %r11\n pop %r10\n pop %r9\n pop %r8\n"
        "  pop %rdi\n pop %rsi\n pop %rdx\n pop %rcx\n pop %rax\n"
        "  iretq\n"
        "vd_spurious_stub:\n"
        "  iretq\n"
        "vd_fault_stub:\n"
        "  mov $0xef, %al\n"
        "  out %al, $0xf4\n"
        "  hlt\n"
        "  jmp vd_fault_stub\n");
extern char vd_irq_stub[], vd_spurious_stub[], vd_fault_stub[];

static inline void vd_set_gate(uint64_t idt, int vec, void *fn)
{
    volatile uint32_t *g = (volatile uint32_t *)(idt + 16 * (uint64_t)vec);
    uint64_t a = (uint64_t)fn;
    /* a present DPL-0 64-bit interrupt gate in the flat code segment 0x10
     * that hvc_vcpu_set_mode() loads */
    g[0] = (uint32_t)(a & 0xffff) | 0x10u << 16;
    g[1] = (uint32_t)(a & 0xffff0000u) | 0x8e00u;
    g[2] = (uint32_t)(a >> 32);
    g[3] = 0;
}

/* Installs an IDT at @idt where every vector faults, so a stray exception
 * ends the test with a clear status instead of a triple fault. */
static inline void vd_idt_init(uint64_t idt)
{
    for (int v = 0; v < 256; v++)
        vd_set_gate(idt, v, vd_fault_stub);
    /* spurious IRQ 7 and 15 of the two PICs */
    vd_set_gate(idt, 0x27, vd_spurious_stub);
    vd_set_gate(idt, 0x2f, vd_spurious_stub);
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr = {256 * 16 - 1, idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

/* Routes PIC line @line (vector 0x20 + line) to the handler for device @d
 * and unmasks it; interrupts stay disabled until vd_wait_used() sleeps. */
static inline void vd_irq_init(uint64_t idt, struct vd_dev *d, uint32_t line)
{
    vd_irq.dev = d;
    vd_irq.line = line;
    vd_set_gate(idt, (int)(0x20 + line), vd_irq_stub);
    /* ICW1 edge + ICW4, ICW2 bases 0x20/0x28, ICW3 cascade on 2, ICW4 8086 */
    vd_outb(0x20, 0x11);
    vd_outb(0xa0, 0x11);
    vd_outb(0x21, 0x20);
    vd_outb(0xa1, 0x28);
    vd_outb(0x21, 0x04);
    vd_outb(0xa1, 0x02);
    vd_outb(0x21, 0x01);
    vd_outb(0xa1, 0x01);
    uint16_t mask = (uint16_t) ~(1u << line);
    if (line >= 8)
        mask &= (uint16_t) ~(1u << 2);
    vd_outb(0x21, (uint8_t)mask);
    vd_outb(0xa1, (uint8_t)(mask >> 8));
    d->use_irq = 1;
}

/* Waits until queue @q has a used element: spins with a TSC bound when
 * polling, or sleeps in HLT until the interrupt handler has run (cli first,
 * so that the interrupt cannot land between the test and the HLT; STI's
 * one-instruction shadow covers the HLT). An interrupt-mode wait has no
 * bound: the host's watchdog kicks a guest that never wakes. Returns 0 or
 * -1 on a polling timeout. */
static inline int vd_wait_used(struct vd_dev *d, struct vd_queue *q)
{
    if (d->use_irq) {
        for (;;) {
            __asm__ volatile("cli" : : : "memory");
            if (q->used->idx != q->last_used) {
                __asm__ volatile("sti" : : : "memory");
                return 0;
            }
            __asm__ volatile("sti; hlt" : : : "memory");
        }
    }
    uint64_t t0 = vd_rdtsc();
    while (q->used->idx == q->last_used) {
        if (vd_rdtsc() - t0 > VD_SPIN_TICKS)
            return -1;
        vd_pause();
    }
    return 0;
}

/* Before a driver reports, in interrupt mode: lets the interrupt for the
 * last used buffers land. The vCPU may see a used index before the host
 * has injected the interrupt that goes with it (device workers complete
 * requests on threads of their own), so a driver that stops at once could
 * report no interrupt, or InterruptStatus still set. Spins with interrupts
 * on until an interrupt was taken and InterruptStatus reads 0, bounded. */
static inline void vd_irq_settle(struct vd_dev *d)
{
    if (!d->use_irq)
        return;
    uint64_t t0 = vd_rdtsc();
    __asm__ volatile("sti" : : : "memory");
    while ((vd_irq.count == 0 || vd_r32(d, VD_INT_STATUS) != 0) &&
           vd_rdtsc() - t0 < VD_SPIN_TICKS)
        vd_pause();
}

/* Waits until Status has @bits set (a device error), bounded. */
static inline int vd_wait_status(struct vd_dev *d, uint32_t bits)
{
    uint64_t t0 = vd_rdtsc();
    while ((vd_r32(d, VD_STATUS) & bits) != bits) {
        if (vd_rdtsc() - t0 > VD_SPIN_TICKS)
            return -1;
        vd_pause();
    }
    return 0;
}

/* Reads @n bytes of configuration space at @off, retrying until
 * ConfigGeneration is stable around the read (2.5.1). */
static inline uint32_t vd_read_config(struct vd_dev *d, uint32_t off,
                                      volatile uint8_t *out, uint32_t n)
{
    uint32_t g0, g1;
    do {
        g0 = vd_r32(d, VD_CONFIG_GEN);
        for (uint32_t i = 0; i < n; i++)
            out[i] = vd_config8(d, off + i);
        g1 = vd_r32(d, VD_CONFIG_GEN);
    } while (g0 != g1);
    return g1;
}

/* The entry of every guest: _start calls guest_main() and reports its
 * return value on port 0xf4 (unclaimed by the tests, so hvc_vcpu_run()
 * returns there). */
#define VD_GUEST_ENTRY                                                         \
    __asm__(".section .text.entry, \"ax\"\n"                                   \
            ".globl _start\n"                                                  \
            "_start:\n"                                                        \
            "    call guest_main\n"                                            \
            "    out %al, $0xf4\n"                                             \
            "1:  hlt\n"                                                        \
            "    jmp 1b\n"                                                     \
            ".previous\n");                                                    \
    int guest_main(void)

#endif
