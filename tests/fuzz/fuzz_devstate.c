/* libFuzzer target: device state records (hvc_device_load_state) for
 * every device model of the shared platform (fuzz_common.h).
 *
 * Input: byte 0 picks the device (modulo the count), byte 1 the framing:
 * bit 0 set, the harness rewrites the record header (magic, version, size,
 * the device's type, payload length, CRC) so that mutations reach the
 * model's own parser; clear, the bytes go in as they are. The rest is the
 * record (tests/fuzz/fuzz_seeds.c writes each device's own, saved in a few
 * states, as seeds).
 *
 * Checks besides the sanitizers:
 *  - a refused record changes nothing: the device saves the same record
 *    before and after, and guest RAM (guarded, zero) stays zero;
 *  - an accepted record leaves a device whose own saved state loads back
 *    and saves the same again;
 *  - after a load the VM's event thread (which serves the virtqueues a
 *    loaded virtio device kicks) answers within the hang limit.
 * Between inputs the platform is reset (RAM, disk, devices). */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#define REC_HEADER 48

static void fix_header(uint8_t *rec, size_t len, hvc_device *dev)
{
    if (len < REC_HEADER)
        return;
    uint16_t version = 1, hsize = REC_HEADER;
    uint32_t plen = (uint32_t)(len - REC_HEADER);
    uint32_t crc = fz_crc32c(0, rec + REC_HEADER, plen);
    memcpy(rec, "HVDS", 4);
    memcpy(rec + 4, &version, 2);
    memcpy(rec + 6, &hsize, 2);
    memset(rec + 8, 0, 32);
    strncpy((char *)rec + 8, hvc_device_type(dev), 31);
    memcpy(rec + 40, &plen, 4);
    memcpy(rec + 44, &crc, 4);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_platform();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct fz_platform *pf = fz_platform();
    hvc_device *dev = pf->dev[data[0] % FZ_NR_DEVICES];
    size_t len = size - 2;
    uint8_t *rec = malloc(len ? len : 1);
    if (!rec)
        return 0;
    memcpy(rec, data + 2, len);
    if (data[1] & 1)
        fix_header(rec, len, dev);

    size_t before_len, after_len;
    uint8_t *before = fz_save_state(dev, &before_len);
    int r = hvc_device_load_state(dev, rec, len);
    pf->loaded |= r == 0;
    if (r < 0) {
        uint8_t *after = fz_save_state(dev, &after_len);
        if (after_len != before_len || memcmp(before, after, after_len))
            fz_fail("device %s: a refused record (%s) changed its state",
                    hvc_device_name(dev), hvc_last_error());
        if (!fz_all_zero(pf->ram.p, pf->ram.len))
            fz_fail("device %s: a refused record wrote guest RAM",
                    hvc_device_name(dev));
        free(after);
    } else {
        fz_check_state_roundtrip(pf->vm, dev, "after an accepted record");
        fz_platform_reset(pf);
    }
    free(before);
    free(rec);
    return 0;
}
