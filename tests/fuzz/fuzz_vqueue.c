/* libFuzzer target: virtqueues (src/devices/virtio/virtqueue.c and the
 * device models behind them) fed a fuzzed guest-memory image and a queue
 * notify, on the shared platform (fuzz_common.h).
 *
 * Input: byte 0 picks the virtio device (bits 1-0: blk, rng, console, net)
 * and queue (bits 3-2; virtio-net's are receive, transmit, control), byte 1 the
 * queue size (1 << (byte & 7), up to 128; or the byte itself when bit 7 is set,
 * so sizes that are not powers of two and too large are tried), byte 2 how many
 * notifies (1-4). The rest is copied to guest-physical 0x10000 (up to 192 KiB):
 * the descriptor table is at 0x10000, the available ring at 0x11000, the used
 * ring at 0x12000, and the buffers the descriptors point to may be anywhere in
 * the 1 MiB of RAM. Seeds (fuzz_seeds.c) are well-formed requests for each
 * device (virtio-blk reads, writes, flush, get-id and discard; rng buffers;
 * console output) and some broken chains.
 *
 * Checks besides the sanitizers: guest RAM has guard pages (a descriptor
 * that escapes the bounds checks faults); the event thread serves the
 * queue within the hang limit; the used index never runs ahead of the
 * available one; the device's own saved state loads back and saves the
 * same; a reset brings it back to status 0 and to the state it was made
 * in. The platform is reset between
 * inputs. */
#include "fuzz_common.h"

#include <string.h>

#define DESC 0x10000u
#define AVAIL 0x11000u
#define USED 0x12000u
#define IMAGE_MAX (192u << 10)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_platform();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    struct fz_platform *pf = fz_platform();
    uint32_t vdev = (data[0] & 3) % FZ_NR_VIRTIO;
    uint32_t q = (data[0] >> 2) & 3;
    uint32_t qsize = data[1] & 0x80 ? data[1] : 1u << (data[1] & 7);
    uint32_t notifies = 1 + (data[2] & 3);
    size_t n = size - 3 > IMAGE_MAX ? IMAGE_MAX : size - 3;
    memcpy(pf->ram.p + DESC, data + 3, n);
    /* The used index is the device's to write: clear it, so that what
     * the check below reads is what the device wrote. */
    memset(pf->ram.p + USED + 2, 0, 2);
    fz_vio_setup(pf, vdev, q, qsize, DESC, AVAIL, USED);
    for (uint32_t i = 0; i < notifies; i++) {
        fz_vio_w32(pf, vdev, 0x50, q); /* QueueNotify */
        fz_flush(pf->vm);
    }
    uint16_t avail_idx, used_idx;
    memcpy(&avail_idx, pf->ram.p + AVAIL + 2, 2);
    memcpy(&used_idx, pf->ram.p + USED + 2, 2);
    hvc_device *dev = pf->dev[FZ_FIRST_VIRTIO + vdev];
    uint32_t status = fz_vio_r32(pf, vdev, 0x70);
    if (!(status & 0x40) && (uint16_t)(avail_idx - used_idx) > 0x8000u &&
        used_idx != 0)
        fz_fail("%s: used index %u ran ahead of the available index %u",
                hvc_device_name(dev), used_idx, avail_idx);
    fz_check_state_roundtrip(pf->vm, dev, "after serving a queue");
    fz_platform_reset(pf);
    if (fz_vio_r32(pf, vdev, 0x70) != 0)
        fz_fail("%s: status 0x%x after a reset", hvc_device_name(dev),
                fz_vio_r32(pf, vdev, 0x70));
    return 0;
}
