/* Host side of the virtio guest tests (tests/test_virtio_guest.c): a VM
 * with one of the guests of tests/virtio/ loaded, a watchdog around every
 * run, the guest's debug text, and the command/result blocks of proto.h. */
#ifndef VTHOST_H
#define VTHOST_H

#include "../hvtest.h"
#include "proto.h"

#include <stddef.h>
#include <stdint.h>

#define VT_PORT_STAGE 0x99 /* = PORT_UNCLAIMED_OUT */

typedef struct vt {
    hvt t;
    hvc_vcpu *vcpu;
    char log[4096]; /* what the guest wrote to port 0xe9 */
    size_t log_len;
    struct vt_cmd cmd;
    struct vt_out out;
    int started;      /* the command is in guest memory */
    uint32_t next_id; /* of the next vCPU vt_restart() creates */
} vt;

/* Opens a VM (4 MiB at 0, in-kernel irqchip), loads tests/virtio/<guest>,
 * collects port 0xe9, creates vCPU 0 in long mode at the guest's entry. */
void vt_open(vt *v, const char *guest);
void vt_close(vt *v);

/* Runs the guest again from its entry, on a fresh vCPU (KVM does not reuse
 * an id), with the next command. */
void vt_restart(vt *v);

/* Starts a command for the device at @base (IRQ @irq). */
void vt_cmd_init(vt *v, uint64_t base, uint32_t irq, uint32_t flags);
/* Appends a request to the blk script; returns its index. */
uint32_t vt_op(vt *v, uint32_t type, uint64_t sector, uint32_t nsect,
               uint32_t seed, uint16_t ndata, uint16_t flags);

/* Writes the command to DATA_IN (on the first run) and runs the guest on a
 * thread of its own until it stops on a port: PORT_DONE (returns its byte)
 * or VT_PORT_STAGE (returns 0x100 | byte). Fails the test on any other exit
 * or when the guest is still running after @seconds (it is kicked out).
 * Reads DATA_OUT into v->out when it returns. */
int vt_run(vt *v, int seconds);
/* vt_run() that expects PORT_DONE with VT_OK, and a guest that says so. */
void vt_run_ok(vt *v);

/* A temporary file of @size bytes, sector s holding vt_pattern(junk, s, i)
 * (junk 0: zeroes). Returns its descriptor (O_RDWR); @path receives its
 * name (unlink it when done). */
int vt_tmpfile(char *path, size_t path_size, size_t size, uint32_t junk);
/* Checks that sectors [sector, sector + n) of @fd hold vt_pattern(seed). */
void vt_assert_file(int fd, uint64_t sector, uint32_t n, uint32_t seed);
/* FNV of what vt_pattern(seed) gives for @n sectors at @sector. */
uint32_t vt_pattern_fnv(uint32_t seed, uint64_t sector, uint32_t n);

/* Asserts that request @i came back with @status, and, when @used_len is
 * not UINT32_MAX, with that used length. */
void vt_assert_res(const vt *v, uint32_t i, uint8_t status, uint32_t used_len);

/* A guest buffer: request @i's data. */
void vt_read_data(vt *v, uint32_t i, void *buf, size_t len);

#endif
