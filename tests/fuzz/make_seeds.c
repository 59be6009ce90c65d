/* Seed streams for tests/fuzz/fuzz_stream.c: small VMs running the flat
 * test guest hlt64 (tests/guests/hlt64.S), paused and saved with
 * hvc_vm_save_fd() into OUTDIR/seed-<name>.bin. Each VM has 256 KiB of RAM
 * and a 1 GiB identity map (4 pages of tables at 0x10000), so a seed is a
 * few dozen KiB: mostly vCPU state and zero-page runs.
 *
 *   make_seeds OUTDIR [GUEST_DIR]
 *
 * Every VM has a 16550 named "com1", as fuzz_stream's setup attaches.
 * Seeds: "plain" (in-kernel irqchip, the vCPU stopped at the guest's done
 * port), "key" (the same, encrypted with the fuzzer's fixed test key),
 * "novcpu" (no vCPU at all: its stream has no VCPU and TSC sections, so
 * it reaches IRQCHIP, DEVICE and END even where vCPU state does not
 * restore) and "noirqchip" (HVC_VM_NO_IRQCHIP, two vCPUs of which one
 * stopped at HLT, caller data, HVC_SAVE_ALIGN_PAGES padding) and
 * "virtio" (no vCPU, and a virtio-rng named "rng" at 0xd0000000). Exits
 * non-zero, with the library's message, when anything fails. */
#include <hvcore.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAM (256u << 10)
#define GUEST_LOAD 0x8000
#define GUEST_STACK 0x7000
#define TABLES 0x10000
#define PORT_DONE 0xf4
#define MAP_1G (1ull << 30)
#define VIRTIO_BASE 0xd0000000u

static const char *guest_dir = HVCORE_GUEST_DIR;

static int fail(const char *what, int r)
{
    fprintf(stderr, "make_seeds: %s: %s (%s)\n", what, hvc_strerror(r),
            hvc_last_error());
    return r < 0 ? r : -1;
}

static int load_guest(hvc_vm *vm, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.bin", guest_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "make_seeds: cannot open %s\n", path);
        return -1;
    }
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    int r = n ? hvc_vm_write(vm, GUEST_LOAD, buf, n) : -1;
    return r < 0 ? fail(path, r) : 0;
}

/* A vCPU in long mode at GUEST_LOAD + @p offset. */
static int add_vcpu(hvc_vm *vm, uint32_t id, uint64_t offset, hvc_vcpu **out)
{
    int r = hvc_vcpu_create(vm, id, out);
    if (r < 0)
        return fail("hvc_vcpu_create", r);
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = HVC_X86_MODE_LONG64;
    o.entry = GUEST_LOAD + offset;
    o.stack = GUEST_STACK;
    o.tables_addr = TABLES;
    o.map_length = MAP_1G;
    r = hvc_vcpu_set_mode(*out, &o);
    return r < 0 ? fail("hvc_vcpu_set_mode", r) : 0;
}

/* Runs @p v once; it must stop at HLT (@p port 0) or at an OUT to @p port.
 */
static int run_to(hvc_vcpu *v, uint16_t port)
{
    const hvc_exit *e;
    int r = hvc_vcpu_run(v, &e);
    if (r < 0)
        return fail("hvc_vcpu_run", r);
    if (port ? e->reason == HVC_EXIT_PIO && e->u.io.port == port
             : e->reason == HVC_EXIT_HLT)
        return 0;
    fprintf(stderr, "make_seeds: unexpected exit %u\n", e->reason);
    return -1;
}

static int save(hvc_vm *vm, const char *dir, const char *name,
                const hvc_save_options *so)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/seed-%s.bin", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    int r = hvc_vm_pause(vm);
    if (r == 0) {
        r = hvc_vm_save_fd(vm, fd, so);
        hvc_vm_resume(vm);
    }
    if (close(fd) < 0 && r == 0)
        r = -1;
    if (r < 0) {
        unlink(path);
        return fail(path, r);
    }
    return 0;
}

/* A VM with @p flags, RAM, the guest and the UART. */
static int new_vm(hvc_hypervisor *hv, uint32_t flags, hvc_vm **out)
{
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    vo.flags = flags;
    vo.max_vcpus = 4; /* fuzz_common.h's FZ_MAX_VCPUS */
    int r = hvc_vm_create(hv, &vo, out);
    if (r < 0)
        return fail("hvc_vm_create", r);
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = RAM;
    hvc_serial_options sio = HVC_SERIAL_OPTIONS_INIT;
    sio.name = "com1";
    if ((r = hvc_vm_add_memory(*out, &mo, NULL)) < 0)
        r = fail("hvc_vm_add_memory", r);
    else if ((r = hvc_serial_create(*out, &sio, NULL)) < 0)
        r = fail("hvc_serial_create", r);
    else
        r = load_guest(*out, "hlt64");
    if (r < 0)
        hvc_vm_destroy(*out);
    return r;
}

/* hlt64 entered past its HLT (which would wait in the kernel for an
 * interrupt), run to the done port; or (@p vcpus 0) no vCPU at all. */
static int seed_irqchip(hvc_hypervisor *hv, const char *dir, const char *name,
                        int vcpus, const uint8_t *key)
{
    hvc_vm *vm;
    hvc_vcpu *v;
    int r = new_vm(hv, 0, &vm);
    if (r < 0)
        return r;
    if (vcpus && (r = add_vcpu(vm, 0, 1, &v)) == 0)
        r = run_to(v, PORT_DONE);
    if (r == 0) {
        hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
        so.key = key;
        r = save(vm, dir, name, &so);
    }
    hvc_vm_destroy(vm);
    return r;
}

static int seed_noirqchip(hvc_hypervisor *hv, const char *dir)
{
    hvc_vm *vm;
    hvc_vcpu *v0, *v1;
    int r = new_vm(hv, HVC_VM_NO_IRQCHIP, &vm);
    if (r < 0)
        return r;
    if ((r = add_vcpu(vm, 0, 0, &v0)) == 0 &&
        (r = add_vcpu(vm, 1, 0, &v1)) == 0 && (r = run_to(v0, 0)) == 0) {
        static const char user[] = "fuzz seed";
        hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
        so.flags = HVC_SAVE_ALIGN_PAGES;
        so.user_data = user;
        so.user_data_length = sizeof(user);
        r = save(vm, dir, "noirqchip", &so);
    }
    hvc_vm_destroy(vm);
    return r;
}

/* A vCPU-less VM with a virtio-rng "rng" at VIRTIO_BASE (IRQ 5) besides
 * the UART: fuzz_stream's fourth shape, whose DEVICE records reach the
 * virtio state loader (and the queue kick after a load). */
static int seed_virtio(hvc_hypervisor *hv, const char *dir)
{
    hvc_vm *vm;
    int r = new_vm(hv, 0, &vm);
    if (r < 0)
        return r;
    hvc_virtio_mmio m = {VIRTIO_BASE, 5, 0};
    if ((r = hvc_virtio_rng_create(vm, &m, "rng", NULL)) < 0)
        r = fail("hvc_virtio_rng_create", r);
    if (r == 0) {
        hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
        r = save(vm, dir, "virtio", &so);
    }
    hvc_vm_destroy(vm);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: make_seeds OUTDIR [GUEST_DIR]\n");
        return 2;
    }
    if (argc == 3)
        guest_dir = argv[2];
    uint8_t key[HVC_STREAM_KEY_SIZE]; /* fuzz_stream.c's test key */
    for (int i = 0; i < HVC_STREAM_KEY_SIZE; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    hvc_hypervisor *hv;
    int r = hvc_hypervisor_open("kvm", &hv);
    if (r < 0) {
        fail("hvc_hypervisor_open", r);
        return 1;
    }
    if ((r = seed_irqchip(hv, argv[1], "plain", 1, NULL)) == 0 &&
        (r = seed_irqchip(hv, argv[1], "key", 1, key)) == 0 &&
        (r = seed_irqchip(hv, argv[1], "novcpu", 0, NULL)) == 0)
        r = seed_noirqchip(hv, argv[1]);
    if (r == 0)
        r = seed_virtio(hv, argv[1]);
    hvc_hypervisor_close(hv);
    return r < 0 ? 1 : 0;
}
