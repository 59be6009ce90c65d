/* libFuzzer target: every kernel loader (src/loader/: ELF with and
 * without a PVH note, bzImage, raw) through hvc_vm_load_kernel() on one VM
 * made once: 4 MiB of guest RAM between guard pages, one vCPU.
 *
 * Input: byte 0 the format (modulo 4: auto, ELF, bzImage, raw), byte 1
 * flags (bit 0: an initrd of (byte 2 | byte 3 << 8) * 16 bytes; bit 1: a
 * command line; bit 2: an ACPI RSDP address; bits 7-4: the raw mode),
 * bytes 4-7 the raw load address, bytes 8-11 the raw entry, the rest the
 * image. Seeds (fuzz_seeds.c): the test guests pvh32, linux64, smp32 (ELF,
 * PVH or not), hlt64.elf, the test bzImage and a raw image.
 *
 * Checks besides the sanitizers:
 *  - RAM holds a fixed non-zero pattern before every load; a failed load
 *    must leave every byte of it (the loader promises an untouched guest
 *    memory on failure);
 *  - a successful load reports a kernel, initrd and command line inside
 *    RAM, and hvc_vcpu_boot() accepts what it returned. */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#define RAM (4u << 20)
#define PATTERN 0xa5a5a5a5a5a5a5a5ull

static hvc_vm *vm;
static hvc_vcpu *vcpu;
static struct fz_ram ram;
static uint8_t initrd[0xffff * 16];

__attribute__((no_sanitize("address", "undefined"))) static bool pristine(void)
{
    const uint64_t *w = (const uint64_t *)ram.p;
    uint64_t acc = 0;
    for (size_t i = 0; i < RAM / 8; i++)
        acc |= w[i] ^ PATTERN;
    return acc == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ram = fz_ram_new(RAM);
    memset(ram.p, 0xa5, RAM);
    vm = fz_vm_new(0, ram, 1);
    if (hvc_vm_get_vcpu(vm, 0, &vcpu) < 0)
        fz_fail("hvc_vm_get_vcpu: %s", hvc_last_error());
    for (size_t i = 0; i < sizeof(initrd); i++)
        initrd[i] = (uint8_t)(i * 131 + 7);
    return 0;
}

static bool inside(uint64_t a, uint64_t len)
{
    return a <= RAM && len <= RAM - a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 12)
        return 0;
    struct fz_in in = {data, size, 0};
    hvc_boot_options o = HVC_BOOT_OPTIONS_INIT;
    o.format = fz_u8(&in) % 4;
    uint8_t flags = fz_u8(&in);
    uint16_t initrd_units = fz_u16(&in);
    o.raw_address = fz_u32(&in);
    o.raw_entry = fz_u32(&in);
    o.raw_mode = flags >> 4;
    if (flags & 1) {
        o.initrd = initrd;
        o.initrd_size = (uint64_t)initrd_units * 16;
    }
    if (flags & 2)
        o.cmdline = "console=ttyS0 earlyprintk=serial panic=-1 quiet";
    if (flags & 4)
        o.acpi_rsdp = 0xe0000;
    /* An exact-size copy, so ASan sees a read past the image's end. */
    size_t klen = size - 12;
    uint8_t *k = malloc(klen ? klen : 1);
    if (!k)
        return 0;
    memcpy(k, data + 12, klen);
    o.kernel = k;
    o.kernel_size = klen;
    hvc_boot_info info;
    memset(&info, 0, sizeof(info));
    if (hvc_vm_load_kernel(vm, &o, &info) < 0) {
        if (!pristine())
            fz_fail("a failed load (%s) changed guest RAM", hvc_last_error());
    } else {
        if (!inside(info.kernel_start, info.kernel_end - info.kernel_start) ||
            info.kernel_end < info.kernel_start ||
            (info.initrd_size &&
             !inside(info.initrd_address, info.initrd_size)) ||
            (info.cmdline_address && !inside(info.cmdline_address, 1)))
            fz_fail("a load reports memory outside RAM: kernel "
                    "0x%llx-0x%llx, initrd 0x%llx+0x%llx, cmdline 0x%llx",
                    (unsigned long long)info.kernel_start,
                    (unsigned long long)info.kernel_end,
                    (unsigned long long)info.initrd_address,
                    (unsigned long long)info.initrd_size,
                    (unsigned long long)info.cmdline_address);
        if (hvc_vcpu_boot(vcpu, &info) < 0)
            fz_fail("hvc_vcpu_boot refuses what the load returned: %s",
                    hvc_last_error());
        memset(ram.p, 0xa5, RAM);
    }
    free(k);
    return 0;
}
