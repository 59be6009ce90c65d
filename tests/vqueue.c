#include "vqueue.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void vq_w32(struct script *s, uint32_t reg, uint32_t v)
{
    s->ops[s->n++] = (struct op){BASE + reg, v, 4, OP_WRITE};
}

int vq_r32(struct script *s, uint32_t reg)
{
    s->ops[s->n] = (struct op){BASE + reg, 0, 4, OP_READ};
    return s->n++;
}

void vq_wait16(struct script *s, uint64_t gpa, uint16_t v)
{
    s->ops[s->n++] = (struct op){gpa, v, 2, OP_WAIT16};
}

/* The vCPU that runs scripts, for the VM most recently opened with
 * vq_vopen(). */
hvc_vm *script_vm;
hvc_vcpu *script_vcpu;

void vq_vopen(hvt *t)
{
    hvt_open(t, 0);
    hvt_load(t->vm, "mmio_script");
    HVT_OK(hvc_vcpu_create(t->vm, 0, &script_vcpu));
    script_vm = t->vm;
}

void vq_vclose(hvt *t)
{
    if (script_vm == t->vm)
        script_vm = NULL;
    hvt_close(t);
}

/* Runs the script and reads it back (with the values of its reads). */
void vq_run(hvt *t, struct script *s)
{
    cr_assert_eq(t->vm, script_vm, "the VM was not opened with vq_vopen()");
    s->ops[s->n++] = (struct op){0, 0, 0, OP_END};
    HVT_OK(hvc_vm_write(t->vm, DATA_IN, s->ops, s->n * sizeof(struct op)));
    hvc_vcpu_mode_options m = HVC_VCPU_MODE_OPTIONS_INIT;
    m.mode = HVC_X86_MODE_LONG64;
    m.entry = GUEST_LOAD;
    m.stack = GUEST_STACK;
    m.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(script_vcpu, &m));
    cr_assert_eq(hvt_run_done(script_vcpu), 0x5c);
    HVT_OK(hvc_vm_read(t->vm, DATA_IN, s->ops, s->n * sizeof(struct op)));
    for (int i = 0; i < s->n; i++)
        cr_assert(!(s->ops[i].op == OP_WAIT16 && s->ops[i].value == 0xdead),
                  "wait at op %d timed out", i);
}

/* The driver's side of device initialisation (virtio 1.2 3.1.1),
 * accepting VIRTIO_F_VERSION_1 and the device-type bits in @p low. */
void vq_init_features(hvt *t, uint32_t nqueues, uint32_t low)
{
    struct script s = {.n = 0};
    vq_w32(&s, 0x070, 0); /* reset */
    vq_w32(&s, 0x070, 1); /* ACKNOWLEDGE */
    vq_w32(&s, 0x070, 3); /* DRIVER */
    vq_w32(&s, 0x024, 1);
    vq_w32(&s, 0x020, 1); /* VIRTIO_F_VERSION_1 */
    vq_w32(&s, 0x024, 0);
    vq_w32(&s, 0x020, low);
    vq_w32(&s, 0x070, 0xb); /* FEATURES_OK */
    int st = vq_r32(&s, 0x070);
    for (uint32_t q = 0; q < nqueues; q++) {
        uint32_t off = q * 0x4000;
        vq_w32(&s, 0x030, q);
        vq_w32(&s, 0x038, QSIZE);
        vq_w32(&s, 0x080, DESC + off);
        vq_w32(&s, 0x084, 0);
        vq_w32(&s, 0x090, AVAIL + off);
        vq_w32(&s, 0x094, 0);
        vq_w32(&s, 0x0a0, USED + off);
        vq_w32(&s, 0x0a4, 0);
        vq_w32(&s, 0x044, 1);
    }
    vq_w32(&s, 0x070, 0xf); /* DRIVER_OK */
    int st2 = vq_r32(&s, 0x070);
    vq_run(t, &s);
    cr_assert_eq(s.ops[st].value, 0xb, "FEATURES_OK refused");
    cr_assert_eq(s.ops[st2].value, 0xf, "status after DRIVER_OK: 0x%llx",
                 (unsigned long long)s.ops[st2].value);
}

void vq_init(hvt *t, uint32_t nqueues)
{
    vq_init_features(t, nqueues, 0);
}

void vq_put_desc(hvt *t, uint32_t qoff, uint16_t i, struct desc d)
{
    HVT_OK(hvc_vm_write(t->vm, DESC + qoff + 16u * i, &d, sizeof(d)));
}

/* Publishes head in the available ring as entry idx (idx+1 afterwards). */
void vq_publish(hvt *t, uint32_t qoff, uint16_t idx, uint16_t head)
{
    HVT_OK(
        hvc_vm_write(t->vm, AVAIL + qoff + 4 + 2u * (idx % QSIZE), &head, 2));
    uint16_t next = idx + 1;
    HVT_OK(hvc_vm_write(t->vm, AVAIL + qoff + 2, &next, 2));
}

/* Notifies queue q, waits for used->idx to reach want, returns ISR. */
uint32_t vq_notify_wait(hvt *t, uint32_t q, uint16_t want)
{
    struct script s = {.n = 0};
    vq_w32(&s, 0x050, q);
    vq_wait16(&s, USED + q * 0x4000 + 2, want);
    int isr = vq_r32(&s, 0x060);
    vq_w32(&s, 0x064, 3); /* ack */
    vq_run(t, &s);
    return (uint32_t)s.ops[isr].value;
}

uint32_t vq_status_reg(hvt *t)
{
    struct script s = {.n = 0};
    int st = vq_r32(&s, 0x070);
    int isr = vq_r32(&s, 0x060);
    vq_run(t, &s);
    return (uint32_t)s.ops[st].value | (uint32_t)s.ops[isr].value << 16;
}

int vq_make_disk(char *path, size_t size)
{
    strcpy(path, "/tmp/hvt-disk-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    uint8_t *b = malloc(size);
    for (size_t i = 0; i < size; i++)
        b[i] = (uint8_t)(i / 512);
    cr_assert_eq(write(fd, b, size), (ssize_t)size);
    free(b);
    return fd;
}

void vq_blk_setup(hvt *t, char *path, hvc_device **dev)
{
    vq_vopen(t);
    int fd = vq_make_disk(path, 64 * 512);
    close(fd);
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio.base = BASE;
    o.mmio.irq = IRQ;
    o.path = path;
    o.serial = "SERIAL-1234";
    HVT_OK(hvc_virtio_blk_create(t->vm, &o, dev));
    vq_init(t, 1);
}

/* A three-descriptor request: header, data (rw per write), status. */
void vq_blk_request(hvt *t, uint16_t slot, uint32_t type, uint64_t sector,
                    uint64_t data, uint32_t len)
{
    uint64_t hdr = BUF + 0x100u * slot;
    struct {
        uint32_t type, reserved;
        uint64_t sector;
    } h = {type, 0, sector};
    HVT_OK(hvc_vm_write(t->vm, hdr, &h, sizeof(h)));
    uint16_t d0 = (uint16_t)(3 * slot);
    vq_put_desc(t, 0, d0, (struct desc){hdr, 16, 1, (uint16_t)(d0 + 1)});
    vq_put_desc(t, 0, (uint16_t)(d0 + 1),
                (struct desc){data, len,
                              (uint16_t)(1 | (type == 0 || type == 8 ? 2 : 0)),
                              (uint16_t)(d0 + 2)});
    vq_put_desc(t, 0, (uint16_t)(d0 + 2), (struct desc){hdr + 0x80, 1, 2, 0});
    uint8_t poison = 0xee;
    HVT_OK(hvc_vm_write(t->vm, hdr + 0x80, &poison, 1));
}

uint8_t vq_blk_status(hvt *t, uint16_t slot)
{
    uint8_t s;
    HVT_OK(hvc_vm_read(t->vm, BUF + 0x100u * slot + 0x80, &s, 1));
    return s;
}

/* After a restore: the write of @p data at @p sector and the read of it
 * back, published before the save and never notified, are served without
 * a notify; then a read of sector @p next goes through a guest notify. */
void vq_expect_in_flight_served(hvt *u, int fd, uint64_t sector,
                                const uint8_t *data, uint8_t next)
{
    uint16_t used = 0;
    for (int i = 0; i < 400 && used < 2; i++) {
        usleep(5000);
        HVT_OK(hvc_vm_read(u->vm, USED + 2, &used, 2));
    }
    cr_assert_eq(used, 2, "in-flight requests served after the restore");
    cr_assert_eq(vq_blk_status(u, 0), 0);
    cr_assert_eq(vq_blk_status(u, 1), 0);
    uint8_t back[512], disk[512];
    HVT_OK(hvc_vm_read(u->vm, 0x301000, back, 512));
    cr_assert_arr_eq(back, data, 512);
    cr_assert_eq(pread(fd, disk, 512, (off_t)(sector * 512)), 512);
    cr_assert_arr_eq(disk, data, 512);
    vq_blk_request(u, 1, 0, next, 0x302000, 512);
    vq_publish(u, 0, 2, 3);
    vq_notify_wait(u, 0, 3);
    cr_assert_eq(vq_blk_status(u, 1), 0);
    HVT_OK(hvc_vm_read(u->vm, 0x302000, back, 1));
    cr_assert_eq(back[0], next);
}

const char *vq_restore_disk;

int vq_blk_attach(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)opaque;
    (void)user;
    (void)len;
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.path = vq_restore_disk;
    o.serial = "SERIAL-1234";
    return hvc_virtio_blk_create(vm, &o, NULL);
}
