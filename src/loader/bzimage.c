/* Linux bzImage: the setup header (Documentation/arch/x86/boot.rst), the
 * protected-mode kernel, and the 64-bit entry. */
#include "loader.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define HDR_SETUP_SECTS 0x1f1
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_HEADER 0x202
#define HDR_VERSION 0x206
#define HDR_LOADFLAGS 0x211
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260
#define XLF_KERNEL_64 0x01
#define XLF_CAN_BE_LOADED_ABOVE_4G 0x02
#define LOADED_HIGH 0x01
#define MIN_VERSION 0x0206

static uint32_t get32(const uint8_t *k, size_t off)
{
    uint32_t v;
    memcpy(&v, k + off, 4);
    return v;
}

static uint16_t get16(const uint8_t *k, size_t off)
{
    uint16_t v;
    memcpy(&v, k + off, 2);
    return v;
}

int hvi_load_bzimage(struct plan *p)
{
    const uint8_t *k = p->opts.kernel;
    uint64_t size = p->opts.kernel_size;
    if (size < 0x270 || get16(k, HDR_BOOT_FLAG) != 0xaa55 ||
        memcmp(k + HDR_HEADER, "HdrS", 4) != 0)
        return hvi_error(-EINVAL, "not a Linux bzImage (no boot-sector "
                                  "signature or HdrS header)");
    uint16_t version = get16(k, HDR_VERSION);
    if (version < MIN_VERSION)
        return hvi_error(-EINVAL,
                         "bzImage boot protocol %u.%02u is older than 2.06",
                         version >> 8, version & 0xff);
    if (!(k[HDR_LOADFLAGS] & LOADED_HIGH))
        return hvi_error(-EINVAL, "bzImage is a zImage (not loaded high)");
    /* xloadflags exist from 2.12; before it there is no 64-bit entry */
    uint16_t xlf = version >= 0x020c ? get16(k, HDR_XLOADFLAGS) : 0;
    if (!(xlf & XLF_KERNEL_64))
        return hvi_error(-EINVAL, "bzImage has no 64-bit entry point "
                                  "(XLF_KERNEL_64 not set)");
    uint32_t setup_sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
    uint64_t setup_size = (uint64_t)(setup_sects + 1) * 512;
    if (setup_size >= size)
        return hvi_error(-EINVAL,
                         "bzImage setup (%u sectors) runs past the %" PRIu64
                         "-byte file",
                         setup_sects, size);
    /* The protected-mode kernel goes at the preferred address when the
     * kernel states one, else at 1 MiB; it needs init_size bytes there. */
    uint64_t load = HIMEM;
    if (version >= 0x020a && get32(k, HDR_PREF_ADDRESS) >= HIMEM)
        memcpy(&load, k + HDR_PREF_ADDRESS, 8);
    uint64_t body = size - setup_size;
    uint64_t init = get32(k, HDR_INIT_SIZE);
    if (init < body)
        init = body;
    int r = hvi_plan_add(p, load, k + setup_size, body, init - body,
                         "bzImage kernel");
    if (r < 0)
        return r;
    p->info.kernel_start = load;
    p->info.kernel_end = load + init;
    p->info.protocol = HVC_BOOT_LINUX64;
    p->info.mode = HVC_X86_MODE_LONG64;
    p->info.entry = load + 0x200; /* the 64-bit entry, as boot.rst says */

    uint32_t cmdline_size =
        version >= 0x0206 ? get32(k, HDR_CMDLINE_SIZE) : 255;
    if ((r = hvi_add_cmdline(p, cmdline_size)) < 0)
        return r;
    uint64_t max = (uint64_t)get32(k, HDR_INITRD_ADDR_MAX) + 1;
    if (xlf & XLF_CAN_BE_LOADED_ABOVE_4G)
        max = UINT64_MAX;
    if ((r = hvi_place_initrd(p, max)) < 0)
        return r;
    /* the setup header as the kernel sees it in boot_params: from 0x1f1 to
     * the end of the header (0x202 + the byte at 0x201) */
    size_t hdr_end = 0x202 + k[HDR_JUMP + 1];
    if (hdr_end > size || hdr_end > 0x280)
        return hvi_error(-EINVAL,
                         "bzImage setup header length 0x%zx is "
                         "invalid",
                         hdr_end - HDR_SETUP_SECTS);
    return hvi_add_boot_params(p, k + HDR_SETUP_SECTS,
                               hdr_end - HDR_SETUP_SECTS);
}
