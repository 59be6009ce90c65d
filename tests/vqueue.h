/* Host-side virtqueue driving for the virtio suites: the test builds
 * descriptor tables and rings in guest memory, and a small guest
 * (guests/mmio_script.S) performs the register accesses a driver would. */
#ifndef VQUEUE_H
#define VQUEUE_H

#include "hvtest.h"

#define BASE 0xd0000000u
#define IRQ 5
#define DESC 0x200000u
#define AVAIL 0x201000u
#define USED 0x202000u
#define BUF 0x210000u
#define QSIZE 8
enum { OP_WRITE, OP_READ, OP_END, OP_WAIT16 };

struct op {
    uint64_t addr, value;
    uint32_t size, op;
};

struct script {
    struct op ops[128];
    int n;
};

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

/* The VM and vCPU that run scripts: those vq_vopen() made last (a test may
 * point them at a restored VM). */
extern hvc_vm *script_vm;
extern hvc_vcpu *script_vcpu;

void vq_w32(struct script *s, uint32_t reg, uint32_t v);
int vq_r32(struct script *s, uint32_t reg);
void vq_wait16(struct script *s, uint64_t gpa, uint16_t v);
void vq_vopen(hvt *t);
void vq_vclose(hvt *t);
/* Runs the script and reads it back (with the values of its reads). */
void vq_run(hvt *t, struct script *s);
/* The driver's side of device initialisation (virtio 1.2 3.1.1). */
void vq_init_features(hvt *t, uint32_t nqueues, uint32_t low);
void vq_init(hvt *t, uint32_t nqueues);
void vq_put_desc(hvt *t, uint32_t qoff, uint16_t i, struct desc d);
/* Publishes head in the available ring as entry idx (idx+1 afterwards). */
void vq_publish(hvt *t, uint32_t qoff, uint16_t idx, uint16_t head);
/* Notifies queue q, waits for used->idx to reach want, returns ISR. */
uint32_t vq_notify_wait(hvt *t, uint32_t q, uint16_t want);
uint32_t vq_status_reg(hvt *t);
int vq_make_disk(char *path, size_t size);
void vq_blk_setup(hvt *t, char *path, hvc_device **dev);
/* A three-descriptor request: header, data (rw per write), status. */
void vq_blk_request(hvt *t, uint16_t slot, uint32_t type, uint64_t sector,
                    uint64_t data, uint32_t len);
uint8_t vq_blk_status(hvt *t, uint16_t slot);

/* After a restore or a migration: the write of @p data at @p sector and
 * the read of it back (slots 0 and 1), published before the save and never
 * notified, are served without a notify; then a read of sector @p next
 * goes through a guest notify. */
void vq_expect_in_flight_served(hvt *u, int fd, uint64_t sector,
                                const uint8_t *data, uint8_t next);
/* A restore's setup callback: the virtio-blk of vq_blk_setup() at BASE,
 * backed by vq_restore_disk. */
extern const char *vq_restore_disk;
int vq_blk_attach(void *opaque, hvc_vm *vm, const void *user, size_t len);

#endif
