/* Helpers shared by the malicious-guest suites (test_malicious_guest.c,
 * test_malicious_chains.c, test_malicious_virtio.c): the error log, the
 * disk image's hash, and a virtio device under attack with the good
 * request that proves a reset brought it back. */
#ifndef MALICIOUS_UTIL_H
#define MALICIOUS_UTIL_H

#include "vqueue.h"

#include <sys/types.h>

/* Descriptor flags and virtio-mmio registers (virtio 1.2 2.7.5, 4.2.2). */
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define ST_NEEDS_RESET 0x40
#define ISR_CONFIG 2u
#define QOFF 0x4000u /* vq_init's distance between queues */
#define RAM_END HVT_MEM

/* virtio-blk request types and status (virtio 1.2 5.2.6). */
#define T_IN 0
#define T_OUT 1
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_IOERR 1
#define DISK_SECTORS 64 /* target_open's image: sector s holds bytes s */

double now_s(void);

/* The library's error log, collected from whichever thread logs. */
void log_start(void);
/* Errors logged since the last call, and the last of them in @last. */
unsigned log_take(char *last, size_t size);

/* 64-bit FNV-1a of a whole file, and its size. */
uint64_t file_hash(const char *path, off_t *size);

/* Puts @v in 64-bit mode at the guest's entry point. */
void run_mode(hvc_vcpu *v);

/* The device under attack and how to drive it. */
struct target {
    const char *type;
    uint32_t queue; /* the queue attacked: its rings are at qoff */
    uint32_t nqueues;
    char path[64]; /* blk: the disk image */
    hvc_device *dev;
    int in[2]; /* console: its input pipe */
    uint32_t features; /* device-type feature bits the driver accepts */
};

/* Flags for the next virtio-blk target_open() makes. */
extern uint32_t blk_flags;

void target_open(hvt *t, struct target *g, const char *type);
void target_close(hvt *t, struct target *g);
/* A good request on a freshly reset device: it must be served. */
void good_request(hvt *t, struct target *g);
/* Descriptor @i of the queue whose rings are at @qoff. */
void put(hvt *t, uint32_t qoff, uint16_t i, uint64_t addr, uint32_t len,
         uint16_t flags, uint16_t next);

#endif
