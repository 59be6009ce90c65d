/* libFuzzer target: a guest's MMIO and port I/O against every platform and
 * virtio device of the shared platform (fuzz_common.h), delivered through
 * the VM's device bus exactly as hvc_vcpu_run() delivers an exit (the
 * library's hvi_io_dispatch), without entering the guest.
 *
 * Input: a script of 7-byte operations [op u8][where u16][value u32]:
 *  - op bits 7-6 = 3: bit 0 set, wait for the event thread (hang limit);
 *    clear, an access to an address no device claims (where * 0x10000 +
 *    value's low 16 bits, PIO when op bit 1 is set);
 *  - op bits 7-6 = 2: a 4-byte guest RAM write of value at where * 4, so a
 *    script can lay out virtqueues and requests;
 *  - otherwise an access to device range op bits 3-0 (a fixed table of
 *    every device's ranges), a write when op bit 4 is set; where bits 13-0
 *    are the offset (modulo the range's length plus 8, so accesses also
 *    straddle its end), bits 15-14 the size (1, 2, 4, 8 bytes).
 * Seeds (fuzz_seeds.c) initialise each virtio device, set up a queue with
 * a request, notify it, and poke each UART, CMOS and i8042 register.
 *
 * Checks besides the sanitizers: guest RAM has guard pages; the event
 * thread answers within the hang limit after the script; every device's
 * own saved state loads back and saves the same again; a device reset
 * brings every virtio device back to status 0, and to the very state it
 * was made in (fz_platform_reset). The platform is reset between inputs. */
#include "fuzz_common.h"

#include <string.h>

static const struct {
    uint32_t space;
    uint64_t base, len;
} ranges[] = {
    {HVC_IO_PIO, 0x3f8, 8},
    {HVC_IO_PIO, 0x70, 2},
    {HVC_IO_PIO, 0x60, 1},
    {HVC_IO_PIO, 0x64, 1},
    {HVC_IO_PIO, 0x80, 1},
    {HVC_IO_PIO, 0x501, 1},
    {HVC_IO_MMIO, FZ_VIRTIO_BASE, 0x200},
    {HVC_IO_MMIO, FZ_VIRTIO_BASE + 0x200, 0x200},
    {HVC_IO_MMIO, FZ_VIRTIO_BASE + 0x400, 0x200},
    {HVC_IO_MMIO, FZ_VIRTIO_BASE + 0x600, 0x200},
};
#define NR_RANGES (sizeof(ranges) / sizeof(ranges[0]))

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_platform();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_platform *pf = fz_platform();
    struct fz_in in = {data, size, 0};
    while (fz_left(&in) >= 7) {
        uint8_t op = fz_u8(&in);
        uint16_t where = fz_u16(&in);
        uint64_t value = fz_u32(&in);
        if ((op >> 6) == 3) {
            if (op & 1)
                fz_flush(pf->vm);
            else
                fz_access(pf->vcpu, op & 2 ? HVC_IO_PIO : HVC_IO_MMIO,
                          (uint64_t)where << 16 | (value & 0xffff), 4, op & 4,
                          &value);
        } else if ((op >> 6) == 2) {
            uint32_t v = (uint32_t)value;
            size_t at = (size_t)where * 4;
            if (at + 4 <= pf->ram.len)
                memcpy(pf->ram.p + at, &v, 4);
        } else {
            unsigned i = (op & 15) % NR_RANGES;
            uint64_t off = (where & 0x3fff) % (ranges[i].len + 8);
            uint32_t sz = 1u << (where >> 14);
            value |= value << 32;
            fz_access(pf->vcpu, ranges[i].space, ranges[i].base + off, sz,
                      op & 0x10, &value);
        }
    }
    fz_check_states_roundtrip(pf->vm, pf->dev, FZ_NR_DEVICES, "after a script");
    fz_platform_reset(pf);
    for (uint32_t v = 0; v < FZ_NR_VIRTIO; v++)
        if (fz_vio_r32(pf, v, 0x70) != 0)
            fz_fail("virtio device %u: status 0x%x after a reset", v,
                    fz_vio_r32(pf, v, 0x70));
    return 0;
}
