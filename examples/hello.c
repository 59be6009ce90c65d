/* hello: the smallest complete VMM on libhvcore's public API.
 *
 * It creates a VM with 2 MiB of RAM, loads a flat guest binary, puts one
 * vCPU in 64-bit long mode at its first byte, serves a console on port 0xe9
 * and ends when the guest writes its exit status to port 0xf4.
 *
 *   hello [GUEST.bin]     (default: the bundled guest built with it)
 */
#include <hvcore.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAM_SIZE (2u << 20)
#define LOAD_ADDR 0x8000
#define STACK_TOP 0x8000
#define TABLES 0x100000
#define CONSOLE_PORT 0xe9
#define EXIT_PORT 0xf4

static int console(void *opaque, hvc_vcpu *vcpu, uint64_t offset, void *data,
                   uint32_t size, int is_write)
{
    (void)opaque, (void)vcpu, (void)offset, (void)size;
    if (is_write) {
        fputc(*(unsigned char *)data, stdout);
    } else {
        *(unsigned char *)data = 0; /* no input */
    }
    return 0;
}

static int exit_port(void *opaque, hvc_vcpu *vcpu, uint64_t offset, void *data,
                     uint32_t size, int is_write)
{
    (void)vcpu, (void)offset, (void)size;
    if (!is_write)
        return 0;
    *(int *)opaque = *(unsigned char *)data;
    return HVC_IO_EXIT; /* hvc_vcpu_run() returns to main() */
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "hello: %s: %s (%s)\n", what, hvc_last_error(),
            hvc_strerror(err));
    return 1;
}

static long load_file(const char *path, void **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    static unsigned char buf[RAM_SIZE / 2];
    size_t n = fread(buf, 1, sizeof(buf), f);
    int err = ferror(f) ? -EIO : feof(f) ? 0 : -EFBIG;
    fclose(f);
    *out = buf;
    return err ? err : (long)n;
}

int main(int argc, char **argv)
{
    if (argc > 2 ||
        (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))) {
        printf("usage: hello [GUEST.bin]\n"
               "Runs a flat 64-bit guest binary (default: the bundled one)\n"
               "with a console on port 0x%x and an exit port at 0x%x.\n",
               CONSOLE_PORT, EXIT_PORT);
        return argc > 2 ? 2 : 0;
    }
    const char *path = argc == 2 ? argv[1] : HELLO_GUEST;
    void *image;
    long len = load_file(path, &image);
    if (len <= 0) {
        fprintf(stderr, "hello: cannot load guest %s: %s\n", path,
                len == 0 ? "empty file" : hvc_strerror((int)len));
        return 2;
    }

    hvc_hypervisor *hv;
    hvc_vm *vm;
    hvc_vcpu *vcpu;
    int r, status = -1;
    if ((r = hvc_hypervisor_open(NULL, &hv)) < 0)
        return fail("opening a hypervisor backend", r);
    if ((r = hvc_vm_create(hv, NULL, &vm)) < 0)
        return fail("creating the VM", r);

    hvc_memory_options ram = HVC_MEMORY_OPTIONS_INIT;
    ram.guest_addr = 0;
    ram.length = RAM_SIZE;
    if ((r = hvc_vm_add_memory(vm, &ram, NULL)) < 0)
        return fail("adding RAM", r);
    if ((r = hvc_vm_write(vm, LOAD_ADDR, image, (size_t)len)) < 0)
        return fail("loading the guest", r);
    if ((r = hvc_vm_add_io_handler(vm, HVC_IO_PIO, CONSOLE_PORT, 1, console,
                                   NULL)) < 0 ||
        (r = hvc_vm_add_io_handler(vm, HVC_IO_PIO, EXIT_PORT, 1, exit_port,
                                   &status)) < 0)
        return fail("registering port handlers", r);

    if ((r = hvc_vcpu_create(vm, 0, &vcpu)) < 0)
        return fail("creating the vCPU", r);
    hvc_vcpu_mode_options mode = HVC_VCPU_MODE_OPTIONS_INIT;
    mode.mode = HVC_X86_MODE_LONG64;
    mode.entry = LOAD_ADDR;
    mode.stack = STACK_TOP;
    mode.tables_addr = TABLES;
    if ((r = hvc_vcpu_set_mode(vcpu, &mode)) < 0)
        return fail("entering long mode", r);

    const hvc_exit *exit;
    if ((r = hvc_vcpu_run(vcpu, &exit)) < 0)
        return fail("running the guest", r);
    if (!(exit->flags & HVC_EXIT_F_HANDLED)) {
        fprintf(stderr, "hello: the guest stopped unexpectedly (exit %u)\n",
                exit->reason);
        status = 1;
    }
    fflush(stdout);
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    printf("hello: guest exited with status %d\n", status);
    return status;
}
