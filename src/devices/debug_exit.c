/* Debug-exit port: a guest byte write ends the run with that status (the
 * convention of QEMU's isa-debug-exit, which tests and hvrun rely on). */
#include "../core/internal.h"

#include <errno.h>

static int dx_write(void *opaque, hv_vcpu *vcpu, uint32_t range,
                    uint64_t offset, const void *data, uint32_t size)
{
    (void)opaque, (void)range, (void)offset, (void)size;
    return hv_vcpu_request_exit(vcpu, HV_EXIT_POWEROFF, *(const uint8_t *)data);
}

static const hv_device_ops debug_exit_ops = {
    .version = HV_DEVICE_OPS_VERSION,
    .type = "debug-exit",
    .write = dx_write,
};

int hv_debug_exit_create(hv_vm *vm, uint16_t port, hv_device **out)
{
    if (!vm)
        return hvi_error(-EINVAL, "hv_debug_exit_create: VM is NULL");
    hv_device_range r = {HV_IO_PIO, 0, port ? port : 0xf4, 1};
    hv_device_options o = HV_DEVICE_OPTIONS_INIT;
    o.nr_ranges = 1;
    o.ranges = &r;
    return hv_vm_add_device(vm, &debug_exit_ops, NULL, &o, out);
}
