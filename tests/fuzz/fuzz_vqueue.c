/* libFuzzer target: virtqueues (src/devices/virtio/virtqueue.c and the
 * device models behind them) fed a fuzzed guest-memory image and a queue
 * notify, on the shared platform (fuzz_common.h).
 *
 * Input: byte 0 picks the virtio device (bits 1-0: blk, rng, console, net)
 * and queue (bits 3-2; virtio-net's are receive, transmit, control), byte 1 the
 * queue size (1 << (byte & 7), up to 128; or the byte itself when bit 7 is set,
 * so sizes that are not powers of two and too large are tried), byte 2 bits
 * 1-0 how many notifies (1-4) and, for virtio-net's receive queue, bits 7-2
 * the packets waiting for it (net_inject()). The rest is copied to
 * guest-physical 0x10000 (up to 192 KiB): the descriptor table is at 0x10000,
 * the available ring at 0x11000, the used ring at 0x12000, and the buffers the
 * descriptors point to may be anywhere in the 1 MiB of RAM. Seeds
 * (fuzz_seeds.c) are well-formed requests for each device (virtio-blk reads,
 * writes, flush, get-id and discard; rng buffers; console output) and some
 * broken chains.
 *
 * Checks besides the sanitizers: guest RAM has guard pages (a descriptor
 * that escapes the bounds checks faults); the event thread serves the
 * queue within the hang limit; the used index never runs ahead of the
 * available one; the device's own saved state loads back and saves the
 * same; a reset brings it back to status 0 and to the state it was made
 * in. The platform is reset between
 * inputs. */
#include "fuzz_common.h"

#include <stdlib.h>
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

/* virtio-net has no tap here (fuzz_common.h): packets reach its receive
 * queue through its own saved state, whose host receive queue (the last
 * field, tag 205) is filled before loading it back. @p sel: bits 1-0 the
 * count (1-4), bits 5-2 the first size class. */
#define NET_T_RXQ 205
static void net_inject(struct fz_platform *pf, uint32_t sel)
{
    static const uint32_t sizes[4] = {60, 1514, 4000, 20000};
    hvc_device *dev = pf->dev[FZ_FIRST_VIRTIO + 3];
    size_t len;
    uint8_t *rec = fz_save_state(dev, &len);
    uint16_t tag = 0;
    uint32_t flen = 1;
    if (len >= 56) {
        memcpy(&tag, rec + len - 8, 2);
        memcpy(&flen, rec + len - 4, 4);
    }
    if (tag != NET_T_RXQ || flen != 0)
        fz_fail("virtio-net's record does not end with an empty receive "
                "queue (tag %u, %u bytes)",
                tag, flen);
    uint32_t count = 1 + (sel & 3), add = 0;
    for (uint32_t i = 0; i < count; i++)
        add += 4 + 12 + sizes[((sel >> 2) + i) & 3];
    uint32_t padded = (add + 7) & ~7u;
    uint8_t *r = realloc(rec, len + padded);
    if (!r)
        fz_fail("out of memory");
    rec = r;
    uint8_t *p = rec + len;
    memset(p, 0, padded);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t k = 12 + sizes[((sel >> 2) + i) & 3];
        memcpy(p, &k, 4);
        memset(p + 4 + 12, 0xa0 + (int)i, k - 12); /* a frame */
        p += 4 + k;
    }
    memcpy(rec + len - 4, &add, 4);
    len += padded;
    uint32_t plen = (uint32_t)(len - 48), crc = fz_crc32c(0, rec + 48, plen);
    memcpy(rec + 40, &plen, 4);
    memcpy(rec + 44, &crc, 4);
    if (hvc_device_load_state(dev, rec, len) < 0)
        fz_fail("virtio-net refuses its own state with %u packets to "
                "receive: %s",
                count, hvc_last_error());
    free(rec);
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
    if (vdev == 3 && q == 0)
        net_inject(pf, data[2] >> 2);
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
