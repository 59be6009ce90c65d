/* The i8042's system-control side: enough for the reset line Linux pulls
 * (0xfe to the command port) and for probes that find an idle controller.
 * There is no keyboard behind it. */
#include "../core/internal.h"

#include <errno.h>
#include <string.h>

#define CMD_RESET 0xfe
#define STATUS_SYS 0x04 /* self-test passed, "system flag" */

static int i8042_read(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                      uint64_t offset, void *data, uint32_t size)
{
    (void)opaque, (void)vcpu, (void)offset;
    /* Port 0x64 (range 1): status, no data waiting, input buffer empty.
     * Port 0x60 (range 0): nothing to read. */
    memset(data, range == 1 ? STATUS_SYS : 0, size);
    return 0;
}

static int i8042_write(void *opaque, hvc_vcpu *vcpu, uint32_t range,
                       uint64_t offset, const void *data, uint32_t size)
{
    (void)opaque, (void)offset, (void)size;
    if (range == 1 && *(const uint8_t *)data == CMD_RESET)
        return hvc_vcpu_request_exit(vcpu, HVC_EXIT_RESET, 0);
    return 0; /* other commands and data are accepted and ignored */
}

static const hvc_device_ops i8042_ops = {
    .version = HVC_DEVICE_OPS_VERSION,
    .type = "i8042",
    .read = i8042_read,
    .write = i8042_write,
};

int hvc_i8042_create(hvc_vm *vm, hvc_device **out)
{
    if (!vm)
        return hvi_error(-EINVAL, "hvc_i8042_create: VM is NULL");
    hvc_device_range r[2] = {{HVC_IO_PIO, 0, 0x60, 1},
                             {HVC_IO_PIO, 0, 0x64, 1}};
    hvc_device_options o = HVC_DEVICE_OPTIONS_INIT;
    o.nr_ranges = 2;
    o.ranges = r;
    return hvc_vm_add_device(vm, &i8042_ops, NULL, &o, out);
}
