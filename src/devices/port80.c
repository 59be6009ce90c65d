/* Port 0x80: POST codes and I/O delays (Linux's outb_p). Claiming it keeps
 * these writes inside hvc_vcpu_run() instead of returning each to the VMM. */
#include "../core/internal.h"

#include <errno.h>
#include <string.h>

static int p80_read(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                    uint64_t offset, void *data, uint32_t size)
{
    (void)opaque, (void)vcpu, (void)range, (void)offset;
    memset(data, 0xff, size);
    return 0;
}

static const hvc_device_ops port80_ops = {
    .version = HVC_DEVICE_OPS_VERSION,
    .type = "port80",
    .read = p80_read,
};

int hvc_port80_create(hvc_vm *vm, hvc_device **out)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_port80_create: VM is NULL");
    hvc_device_range r = {HVC_IO_PIO, 0, 0x80, 1};
    hvc_device_options o = HVC_DEVICE_OPTIONS_INIT;
    o.nr_ranges = 1;
    o.ranges = &r;
    return hvc_vm_add_device(vm, &port80_ops, NULL, &o, out);
}
