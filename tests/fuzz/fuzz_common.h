/* What every libFuzzer target in tests/fuzz/ shares: one hypervisor and
 * VMs made once per process, guest RAM the harness maps itself with
 * PROT_NONE guard pages either side (an access past either end faults
 * under ASan as a SEGV), fast RAM checks, an input reader, and a flush of
 * the VM's event thread with a hang limit.
 *
 * Each check that fails calls fz_fail(), which prints what broke and
 * aborts: libFuzzer keeps the input as a crash. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <hvcore.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Seconds the event thread may take to serve a flush before the input
 * counts as a hang (FUZZ_HANG_SECONDS overrides). */
#define FZ_HANG_SECONDS 5

_Noreturn void fz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

hvc_hypervisor *fz_hv(void);

/* Guest RAM from mmap with an inaccessible page either side. */
struct fz_ram {
    uint8_t *p;
    size_t len;
};
struct fz_ram fz_ram_new(size_t len);
/* A VM with @p flags, @p ram (caller memory) at guest-physical 0 and
 * @p nvcpus vCPUs (ids 0..n-1, left in their reset state), and room for
 * FZ_MAX_VCPUS (small: the library walks vCPU slots per save and restore;
 * make_seeds.c makes its VMs the same). */
#define FZ_MAX_VCPUS 4
hvc_vm *fz_vm_new(uint32_t flags, struct fz_ram ram, uint32_t nvcpus);
bool fz_all_zero(const void *p, size_t n);
uint64_t fz_hash(const void *p, size_t n);

/* Waits until the VM's event thread has run everything signalled before
 * the call; fz_fail() past the hang limit. */
void fz_flush(hvc_vm *vm);

/* A device's save_state record into a malloc'd buffer (*len set). */
uint8_t *fz_save_state(hvc_device *dev, size_t *len);
/* The device's own saved state must load back, and once the queues the
 * load kicked are served, it must save, load and save the same again;
 * @p what names the check in the message. */
void fz_check_state_roundtrip(hvc_vm *vm, hvc_device *dev, const char *what);
/* The same for @p n devices at once (one pause, one flush per round). */
void fz_check_states_roundtrip(hvc_vm *vm, hvc_device *const *devs, size_t n,
                               const char *what);

/* One guest access through the VM's device bus, as if @p vcpu exited
 * for it: @p space HVC_IO_PIO or HVC_IO_MMIO. Returns whether a device
 * claimed it. */
bool fz_access(hvc_vcpu *vcpu, uint32_t space, uint64_t addr, uint32_t size,
               bool write, uint64_t *value);

/* The platform the device targets share: 1 MiB of guarded RAM at 0, one
 * vCPU (never run), and one of each device model: a 16550 "com1" at 0x3f8
 * (IRQ 4), CMOS, i8042, port 0x80, debug-exit at 0x501, and virtio-blk
 * (a 64 KiB memfd disk), virtio-rng, virtio-console and virtio-net at
 * FZ_VIRTIO_BASE + i * 0x200 (IRQ 5 + i). virtio-net is created detached
 * (HVC_VIRTIO_NET_DETACHED, MAC FZ_NET_MAC): no tap; what the guest sends
 * waits in its bounded holding queue, which a reset empties. */
#define FZ_PLATFORM_RAM (1u << 20)
#define FZ_VIRTIO_BASE 0xd0000000u
#define FZ_NR_VIRTIO 4
#define FZ_NR_DEVICES 9
#define FZ_DISK_SIZE (64u << 10)
#define FZ_NET_MAC                                                             \
    {                                                                          \
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56                                     \
    }
struct fz_platform {
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    struct fz_ram ram;
    hvc_device *dev[FZ_NR_DEVICES];
    int disk_fd;
    /* Each virtio device's record as fz_platform() made it. */
    uint8_t *made[FZ_NR_VIRTIO];
    size_t made_len[FZ_NR_VIRTIO];
    /* Set by a target that loaded a device record (which may change what
     * only the VMM sets, such as virtio-net's MAC): the next reset loads
     * the records above back instead of checking against them. */
    bool loaded;
};
struct fz_platform *fz_platform(void);
/* The virtio devices' index in dev[]: 5, 6, 7, 8. */
#define FZ_FIRST_VIRTIO 5
/* Puts RAM (zero), the disk (zero) and every device (reset) back as
 * fz_platform() made them, and checks that the reset did: each virtio
 * device then saves the record it saved when made (unless pf->loaded). */
void fz_platform_reset(struct fz_platform *pf);
/* A virtio device's 32-bit register access through the bus. */
void fz_vio_w32(struct fz_platform *pf, uint32_t vdev, uint32_t reg,
                uint32_t v);
uint32_t fz_vio_r32(struct fz_platform *pf, uint32_t vdev, uint32_t reg);
/* The driver's side of initialisation (virtio 1.2 3.1.1) for virtio
 * device @p vdev, with queue @p q of @p qsize entries at @p desc, @p avail,
 * @p used, then DRIVER_OK. */
void fz_vio_setup(struct fz_platform *pf, uint32_t vdev, uint32_t q,
                  uint32_t qsize, uint64_t desc, uint64_t avail, uint64_t used);

/* Input reader: bytes past the end read as zero. */
struct fz_in {
    const uint8_t *p;
    size_t n, at;
};
uint8_t fz_u8(struct fz_in *in);
uint16_t fz_u16(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
uint64_t fz_u64(struct fz_in *in);
size_t fz_left(const struct fz_in *in);

/* CRC32C as the library's records use it. */
uint32_t fz_crc32c(uint32_t crc, const void *p, size_t n);

#endif
