/* Debug-exit port: a guest byte write ends the run with that status (the
 * convention of QEMU's isa-debug-exit, which tests and hvrun rely on). */
#include "../core/internal.h"

#include <errno.h>

static int dx_write(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                    uint64_t offset, const void *data, uint32_t size)
{
    (void)opaque, (void)range, (void)offset, (void)size;
    return hvc_vcpu_request_exit(vcpu, HVC_EXIT_POWEROFF,
                                 *(const uint8_t *)data);
}

static const hvc_device_ops debug_exit_ops = {
    .version = HVC_DEVICE_OPS_VERSION,
    .type = "debug-exit",
    .write = dx_write,
};

int hvc_debug_exit_create(hvc_vm *vm, uint16_t port, hvc_device **out)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_debug_exit_create: VM is NULL");
    hvc_device_range r = {HVC_IO_PIO, 0, port ? port : 0xf4, 1};
    hvc_device_options o = HVC_DEVICE_OPTIONS_INIT;
    o.nr_ranges = 1;
    o.ranges = &r;
    return hvc_vm_add_device(vm, &debug_exit_ops, NULL, &o, out);
}
