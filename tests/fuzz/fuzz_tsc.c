/* libFuzzer target: the TSC state record (hvc_vm_restore_tsc,
 * src/core/tsc_state.c and tsc_restore.c) on one VM with two vCPUs, made
 * once.
 *
 * Input: byte 0 picks the restore options (bits 0-1 the pause policy,
 * bit 2 a max_error_us of 1 instead of the default); the rest is the
 * record. Seeds (fuzz_seeds.c) are the VM's own records, saved after
 * offsets, TSC_ADJUST and deadlines were set in a few ways.
 *
 * Checks besides the sanitizers: whenever a record restores, the VM's own
 * record saved right after it must restore too, and the one saved after
 * that as well (issue 15 item 2: every value a restore accepts keeps the
 * VM's own save -> restore round trip working). */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

static hvc_vm *vm;
static struct fz_ram ram;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ram = fz_ram_new(64u << 10);
    vm = fz_vm_new(0, ram, 2);
    return 0;
}

static void own_record_restores(const char *when)
{
    uint8_t buf[4096];
    size_t n;
    if (hvc_vm_save_tsc(vm, buf, sizeof(buf), &n) < 0)
        fz_fail("%s: the VM does not save its TSC record: %s", when,
                hvc_last_error());
    if (hvc_vm_restore_tsc(vm, buf, n, NULL) < 0)
        fz_fail("%s: the VM refuses its own TSC record: %s", when,
                hvc_last_error());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    hvc_tsc_restore_options o = HVC_TSC_RESTORE_OPTIONS_INIT;
    o.pause = data[0] & 3;
    if (data[0] & 4)
        o.max_error_us = 1;
    /* A copy of the exact size, so ASan sees a read past its end. */
    size_t len = size - 1;
    uint8_t *rec = malloc(len ? len : 1);
    if (!rec)
        return 0;
    memcpy(rec, data + 1, len);
    if (hvc_vm_restore_tsc(vm, rec, len, &o) == 0) {
        own_record_restores("after an accepted record");
        own_record_restores("after restoring its own record");
    }
    free(rec);
    return 0;
}
