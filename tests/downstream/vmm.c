/* A downstream VMM: built from an installed libhvcore only (pkg-config or
 * find_package), it runs a flat 64-bit guest whose console is port 0xe9 and
 * whose exit status goes to port 0xf4, and echoes the console.
 *   vmm GUEST.bin */
#include <hvcore.h>

#include <stdio.h>
#include <stdlib.h>

static int console(void *opaque, hvc_vcpu *vcpu, uint64_t offset, void *data,
                   uint32_t size, int is_write)
{
    (void)opaque, (void)vcpu, (void)offset, (void)size;
    if (is_write)
        putchar(*(char *)data);
    return 0;
}

static int check(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "vmm: %s: %s\n", what, hvc_last_error());
        exit(1);
    }
    return r;
}

int main(int argc, char **argv)
{
    static unsigned char image[1 << 20];
    FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
    if (!f) {
        fprintf(stderr, "usage: vmm GUEST.bin\n");
        return 2;
    }
    size_t len = fread(image, 1, sizeof(image), f);
    fclose(f);
    if (hvc_version() / 10000 != HVC_VERSION_MAJOR) {
        fprintf(stderr, "vmm: built for %d.x, loaded %s\n", HVC_VERSION_MAJOR,
                hvc_version_string());
        return 1;
    }
    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    const hvc_exit *exit;
    check(hvc_hypervisor_open(NULL, &hv), "open");
    check(hvc_vm_create(hv, NULL, &vm), "VM");
    hvc_memory_options ram = HVC_MEMORY_OPTIONS_INIT;
    ram.length = 2 << 20;
    check(hvc_vm_add_memory(vm, &ram, NULL), "RAM");
    check(hvc_vm_write(vm, 0x8000, image, len), "load");
    check(hvc_vm_add_io_handler(vm, HVC_IO_PIO, 0xe9, 1, console, NULL),
          "console");
    check(hvc_vcpu_create(vm, 0, &vcpu), "vCPU");
    hvc_vcpu_mode_options mode = HVC_VCPU_MODE_OPTIONS_INIT;
    mode.mode = HVC_X86_MODE_LONG64;
    mode.entry = 0x8000;
    mode.stack = 0x8000;
    mode.tables_addr = 0x100000;
    check(hvc_vcpu_set_mode(vcpu, &mode), "mode");
    check(hvc_vcpu_run(vcpu, &exit), "run");
    int status = exit->reason == HVC_EXIT_PIO && exit->u.io.port == 0xf4
                     ? *(unsigned char *)exit->u.io.data
                     : 100 + (int)exit->reason;
    check(hvc_vm_destroy(vm), "destroy");
    check(hvc_hypervisor_close(hv), "close");
    return status;
}
