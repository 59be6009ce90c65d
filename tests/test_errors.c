/* Every entry point with NULL and otherwise wrong arguments: a negative
 * errno and a message, never a crash. */
#include "hvtest.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int nop(void *o, hvc_vcpu *v, uint64_t off, void *d, uint32_t s, int w)
{
    (void)o, (void)v, (void)off, (void)d, (void)s, (void)w;
    return 0;
}

Test(errors, null_handles_everywhere)
{
    uint64_t u64;
    size_t sz;
    hvc_reg id = HVC_X86_RAX;
    hvc_x86_segment seg;
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    hvc_vcpu_mode_options vo = HVC_VCPU_MODE_OPTIONS_INIT;
    hvc_memory_region *region;
    hvc_vcpu *vcpu;
    hvc_vm *vm;
    char buf[8];
    void *p;
    HVT_ERR(hvc_hypervisor_close(NULL), -EINVAL);
    HVT_ERR(hvc_hypervisor_get_cap(NULL, HVC_CAP_MAX_VCPUS, &u64), -EINVAL);
    cr_assert_null(hvc_hypervisor_backend(NULL));
    HVT_ERR(hvc_vm_create(NULL, NULL, &vm), -EINVAL);
    HVT_ERR(hvc_vm_destroy(NULL), -EINVAL);
    HVT_ERR(hvc_vm_pause(NULL), -EINVAL);
    HVT_ERR(hvc_vm_resume(NULL), -EINVAL);
    cr_assert_eq(hvc_vm_is_paused(NULL), 0);
    HVT_ERR(hvc_vm_add_io_handler(NULL, HVC_IO_PIO, 0, 1, nop, NULL), -EINVAL);
    HVT_ERR(hvc_vm_remove_io_handler(NULL, HVC_IO_PIO, 0), -EINVAL);
    HVT_ERR(hvc_vm_set_irq(NULL, 0, 1), -EINVAL);
    HVT_ERR(hvc_vm_send_msi(NULL, 0, 0), -EINVAL);
    HVT_ERR(hvc_vm_add_memory(NULL, &mo, &region), -EINVAL);
    HVT_ERR(hvc_vm_remove_memory(NULL, NULL), -EINVAL);
    HVT_ERR(hvc_vm_find_memory(NULL, 0, &region), -EINVAL);
    cr_assert_eq(hvc_memory_region_guest_addr(NULL), 0);
    cr_assert_eq(hvc_memory_region_length(NULL), 0);
    cr_assert_null(hvc_memory_region_hva(NULL));
    cr_assert_eq(hvc_memory_region_flags(NULL), 0);
    cr_assert_eq(hvc_memory_region_fd(NULL), -1);
    HVT_ERR(hvc_vm_read(NULL, 0, buf, 1), -EINVAL);
    HVT_ERR(hvc_vm_write(NULL, 0, buf, 1), -EINVAL);
    HVT_ERR(hvc_vm_gpa_to_hva(NULL, 0, 1, &p), -EINVAL);
    HVT_ERR(hvc_vcpu_create(NULL, 0, &vcpu), -EINVAL);
    HVT_ERR(hvc_vcpu_destroy(NULL), -EINVAL);
    cr_assert_eq(hvc_vcpu_id(NULL), UINT32_MAX);
    cr_assert_null(hvc_vcpu_vm(NULL));
    HVT_ERR(hvc_vcpu_run(NULL, NULL), -EINVAL);
    cr_assert_null(hvc_vcpu_get_exit(NULL));
    HVT_ERR(hvc_vcpu_complete_io(NULL, buf, 1), -EINVAL);
    HVT_ERR(hvc_vcpu_kick(NULL), -EINVAL);
    HVT_ERR(hvc_vcpu_get_regs(NULL, &id, &u64, 1), -EINVAL);
    HVT_ERR(hvc_vcpu_set_regs(NULL, &id, &u64, 1), -EINVAL);
    HVT_ERR(hvc_vcpu_get_reg(NULL, id, &u64), -EINVAL);
    HVT_ERR(hvc_vcpu_set_reg(NULL, id, 0), -EINVAL);
    HVT_ERR(hvc_vcpu_get_segment(NULL, HVC_X86_CS, &seg), -EINVAL);
    HVT_ERR(hvc_vcpu_set_segment(NULL, HVC_X86_CS, &seg), -EINVAL);
    HVT_ERR(hvc_vcpu_fpu_state_size(NULL, &sz), -EINVAL);
    HVT_ERR(hvc_vcpu_get_fpu_state(NULL, buf, sizeof(buf)), -EINVAL);
    HVT_ERR(hvc_vcpu_set_fpu_state(NULL, buf, sizeof(buf)), -EINVAL);
    HVT_ERR(hvc_vcpu_mode_tables_size(NULL, &vo, &u64), -EINVAL);
    HVT_ERR(hvc_vcpu_set_mode(NULL, &vo), -EINVAL);
}

Test(errors, null_outputs_with_live_objects)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(t.vm, 0, &v));
    HVT_ERR(hvc_vm_create(t.hv, NULL, NULL), -EINVAL);
    HVT_ERR(hvc_vm_add_memory(t.vm, NULL, NULL), -EINVAL);
    HVT_ERR(hvc_vm_remove_memory(t.vm, NULL), -EINVAL);
    HVT_ERR(hvc_vm_find_memory(t.vm, 0, NULL), -EINVAL);
    HVT_ERR(hvc_vm_gpa_to_hva(t.vm, 0, 1, NULL), -EINVAL);
    HVT_ERR(hvc_vcpu_complete_io(v, NULL, 1), -EINVAL);
    HVT_ERR(hvc_vcpu_get_segment(v, HVC_X86_CS, NULL), -EINVAL);
    HVT_ERR(hvc_vcpu_set_segment(v, HVC_X86_CS, NULL), -EINVAL);
    HVT_ERR(hvc_vcpu_fpu_state_size(v, NULL), -EINVAL);
    HVT_ERR(hvc_vcpu_get_fpu_state(v, NULL, 100), -EINVAL);
    HVT_ERR(hvc_vcpu_set_fpu_state(v, NULL, 100), -EINVAL);
    HVT_ERR(hvc_vcpu_mode_tables_size(t.vm, NULL, NULL), -EINVAL);
    hvt_close(&t);
}

Test(errors, vm_options_are_checked)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    hvc_vm *vm;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_vm_options o = HVC_VM_OPTIONS_INIT;
    o.size = 2;
    HVT_ERR(hvc_vm_create(hv, &o, &vm), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "size 2"), "%s", hvc_last_error());
    o.size = sizeof(o) + 8; /* from a newer library */
    HVT_ERR(hvc_vm_create(hv, &o, &vm), -EINVAL);
    o = (hvc_vm_options)HVC_VM_OPTIONS_INIT;
    o.flags = 0x100;
    HVT_ERR(hvc_vm_create(hv, &o, &vm), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "0x100"), "%s", hvc_last_error());
    o = (hvc_vm_options)HVC_VM_OPTIONS_INIT;
    o.kick_signal = SIGKILL;
    HVT_ERR(hvc_vm_create(hv, &o, &vm), -EINVAL);
    o.kick_signal = 1000;
    HVT_ERR(hvc_vm_create(hv, &o, &vm), -EINVAL);
    o.kick_signal = -3;
    HVT_ERR(hvc_vm_create(hv, &o, &vm), -EINVAL);
    /* a caller compiled against the first, shorter layout still works */
    o = (hvc_vm_options)HVC_VM_OPTIONS_INIT;
    o.size = 8;
    HVT_OK(hvc_vm_create(hv, &o, &vm));
    HVT_OK(hvc_vm_destroy(vm));
    /* and a custom kick signal is honoured */
    o = (hvc_vm_options)HVC_VM_OPTIONS_INIT;
    o.kick_signal = SIGRTMIN + 3;
    HVT_OK(hvc_vm_create(hv, &o, &vm));
    struct sigaction sa;
    sigaction(SIGRTMIN + 3, NULL, &sa);
    cr_assert(sa.sa_handler != SIG_DFL, "no kick handler installed");
    HVT_OK(hvc_vm_destroy(vm));
    HVT_OK(hvc_hypervisor_close(hv));
}

/* A second VM beside @p a, whose objects the checks below hand to @p a.
 * A backend that allows one VM per process (HVC_CAP_MAX_VMS 1:
 * Hypervisor.framework) refuses it, through @p a's handle and through
 * another of the same backend: that refusal is checked, with @p a left
 * intact. Since the limit is per backend, the second VM is then made on
 * another compiled-in backend that opens here, if any. Returns 1 with @p b
 * open, 0 when no second VM can exist in this process. */
static int open_second(hvt *a, hvt *b)
{
    memset(b, 0, sizeof(*b));
    uint64_t max = 0;
    HVT_OK(hvc_hypervisor_get_cap(a->hv, HVC_CAP_MAX_VMS, &max));
    if (max != 1) {
        hvt_open(b, 0);
        return 1;
    }
    hvc_vm *vm = NULL;
    HVT_ERR(hvc_vm_create(a->hv, NULL, &vm), -EBUSY);
    cr_assert_null(vm);
    cr_assert(strstr(hvc_last_error(), "allows 1 VM(s) per process"), "%s",
              hvc_last_error());
    const char *mine = hvc_hypervisor_backend(a->hv);
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open(mine, &hv));
    HVT_ERR(hvc_vm_create(hv, NULL, &vm), -EBUSY);
    HVT_OK(hvc_hypervisor_close(hv));
    hvc_memory_region *r;
    HVT_OK(hvc_vm_find_memory(a->vm, 0, &r));
    cr_assert_eq(r, a->ram, "the refusal touched the first VM");

    for (size_t i = 0; i < hvc_backend_count(); i++) {
        const char *name = hvc_backend_name(i);
        if (strcmp(name, mine) == 0 || hvc_backend_probe(name) < 0)
            continue;
        HVT_OK(hvc_hypervisor_open(name, &b->hv));
        HVT_OK(hvc_vm_create(b->hv, NULL, &b->vm));
        hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
        m.length = HVT_MEM;
        HVT_OK(hvc_vm_add_memory(b->vm, &m, &b->ram));
        cr_log_info("the second VM is on backend %s", name);
        return 1;
    }
    cr_log_info("one VM per process and no other backend here: the checks "
                "that take another VM's objects are the refusal above");
    return 0;
}

Test(errors, region_of_another_vm)
{
    hvt a, b;
    hvt_open(&a, 0);
    if (open_second(&a, &b)) {
        HVT_ERR(hvc_vm_remove_memory(a.vm, b.ram), -ENOENT);
        cr_assert(strstr(hvc_last_error(), "another VM"), "%s",
                  hvc_last_error());
        HVT_ERR(hvc_vm_remove_memory(b.vm, a.ram), -ENOENT);
        cr_assert(strstr(hvc_last_error(), "another VM"), "%s",
                  hvc_last_error());
        /* both still hold their own */
        hvc_memory_region *r;
        HVT_OK(hvc_vm_find_memory(a.vm, 0, &r));
        cr_assert_eq(r, a.ram);
        HVT_OK(hvc_vm_find_memory(b.vm, 0, &r));
        cr_assert_eq(r, b.ram);
    }
    uint64_t max = 0;
    HVT_OK(hvc_hypervisor_get_cap(a.hv, HVC_CAP_MAX_VMS, &max));
    hvc_hypervisor *hv = a.hv;
    a.hv = NULL;
    hvt_close(&a);
    if (max == 1) {
        /* the refused VM held nothing: with the first gone, it can be */
        hvc_vm *vm;
        HVT_OK(hvc_vm_create(hv, NULL, &vm));
        HVT_OK(hvc_vm_destroy(vm));
    }
    HVT_OK(hvc_hypervisor_close(hv));
    hvt_close(&b);
}

static hvc_vm *handler_vm;
static int handler_results[4];

static int reentrant(void *o, hvc_vcpu *v, uint64_t off, void *d, uint32_t s,
                     int w)
{
    (void)o, (void)v, (void)off, (void)d, (void)s, (void)w;
    handler_results[0] = hvc_vm_pause(handler_vm);
    handler_results[1] = hvc_vm_destroy(handler_vm);
    handler_results[2] =
        hvc_vm_add_io_handler(handler_vm, HVC_IO_PIO, 0x500, 1, nop, NULL);
    handler_results[3] = hvc_vm_remove_io_handler(handler_vm, HVC_IO_PIO, 0xf4);
    return HVC_IO_EXIT;
}

Test(errors, handler_cannot_deadlock_its_vm)
{
    hvt t;
    hvt_open(&t, 0);
    handler_vm = t.vm;
    hvt_load(t.vm, "long64");
    HVT_OK(
        hvc_vm_add_io_handler(t.vm, HVC_IO_PIO, PORT_DONE, 1, reentrant, NULL));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(v, &e));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(handler_results[i], -EDEADLK, "call %d: %d", i,
                     handler_results[i]);
    hvt_close(&t);
}

/* Strings from outside reach messages escaped: a device name, a device
 * record's type and a snapshot path with control bytes in them. */
Test(errors, outside_strings_are_escaped_in_messages)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_device *d;
    HVT_ERR(hvc_vm_find_device(t.vm, "\x1b]0;owned\x07", &d), -ENOENT);
    cr_assert_null(strchr(hvc_last_error(), 0x1b), "%s", hvc_last_error());
    cr_assert(strstr(hvc_last_error(), "\\x1b]0;owned\\x07"), "%s",
              hvc_last_error());
    /* A name with a control byte is refused when the device is added. */
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com\x1b[1m";
    HVT_ERR(hvc_serial_create(t.vm, &so, &d), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "com\\x1b[1m"), "%s", hvc_last_error());
    cr_assert_null(strchr(hvc_last_error(), 0x1b), "%s", hvc_last_error());
    /* A state record whose type holds an escape sequence. */
    so.name = "com1";
    HVT_OK(hvc_serial_create(t.vm, &so, &d));
    uint8_t rec[4096];
    size_t len;
    HVT_OK(hvc_device_save_state(d, rec, sizeof(rec), &len));
    memcpy(rec + 8, "\x1b[2J", 5);
    cr_assert_lt(hvc_device_load_state(d, rec, len), 0);
    cr_assert_null(strchr(hvc_last_error(), 0x1b), "%s", hvc_last_error());
    cr_assert(strstr(hvc_last_error(), "\\x1b[2J"), "%s", hvc_last_error());
    /* A snapshot path. */
    hvc_vm *vm;
    HVT_ERR(hvc_snapshot_restore(t.hv, "/nonexistent/\x1b[2J.snap", NULL, &vm),
            -ENOENT);
    cr_assert_null(strchr(hvc_last_error(), 0x1b), "%s", hvc_last_error());
    cr_assert(strstr(hvc_last_error(), "\\x1b[2J"), "%s", hvc_last_error());
    hvt_close(&t);
}

static void on_fd(void *opaque, int fd, uint32_t events)
{
    (void)opaque, (void)fd, (void)events;
}

/* The convention of the headers: a lookup that finds nothing is -ENOENT,
 * a range or name that collides with one already there is -EEXIST, in
 * every object (issue 12 found -EINVAL and -EFAULT in some). */
Test(errors, not_found_is_enoent_and_overlap_is_eexist)
{
    hvt a, b;
    hvt_open(&a, 0);
    int two = open_second(&a, &b);
    hvc_memory_region *r;
    hvc_device *dev;
    hvc_vcpu *v;

    /* -ENOENT: nothing of that name, address, id or handle here */
    HVT_ERR(hvc_backend_probe("no-such-backend"), -ENOENT);
    HVT_ERR(hvc_vm_find_memory(a.vm, 1ull << 40, &r), -ENOENT);
    if (two)
        HVT_ERR(hvc_vm_remove_memory(a.vm, b.ram), -ENOENT);
    HVT_ERR(hvc_vm_remove_io_handler(a.vm, HVC_IO_PIO, 0x777), -ENOENT);
    HVT_ERR(hvc_vm_remove_io_handler(a.vm, HVC_IO_MMIO, 0xfee00000), -ENOENT);
    HVT_ERR(hvc_vm_unwatch_fd(a.vm, 0), -ENOENT);
    HVT_ERR(hvc_vm_find_device(a.vm, "nothing", &dev), -ENOENT);
    HVT_ERR(hvc_vm_get_vcpu(a.vm, 0, &v), -ENOENT);
    if (two) {
        HVT_OK(hvc_port80_create(b.vm, &dev));
        HVT_ERR(hvc_vm_remove_device(a.vm, dev), -ENOENT);
    }
    hvc_doorbell db = {HVC_IO_MMIO, 4, 0xd0000000, 0, 0, 0};
    HVT_ERR(hvc_vm_remove_doorbell(a.vm, &db), -ENOENT);
    /* a NUMA node the host does not have, to pin to or to bind memory to */
    uint32_t missing = 4095;
    HVT_ERR(hvc_thread_pin_node(missing), -ENOENT);
    cr_assert(strstr(hvc_last_error(), "4095 does not exist"), "%s",
              hvc_last_error());
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.guest_addr = 0x10000000;
    mo.length = 1 << 20;
    mo.numa_policy = HVC_NUMA_BIND;
    mo.numa_node_count = 1;
    mo.numa_nodes = &missing;
    HVT_ERR(hvc_vm_add_memory(a.vm, &mo, NULL), -ENOENT);

    /* -EEXIST: the range or the name is taken */
    mo = (hvc_memory_options)HVC_MEMORY_OPTIONS_INIT;
    mo.guest_addr = HVT_MEM - 0x1000;
    mo.length = 0x2000;
    HVT_ERR(hvc_vm_add_memory(a.vm, &mo, NULL), -EEXIST);
    HVT_OK(hvc_vm_add_io_handler(a.vm, HVC_IO_PIO, 0x700, 8, nop, NULL));
    HVT_ERR(hvc_vm_add_io_handler(a.vm, HVC_IO_PIO, 0x707, 2, nop, NULL),
            -EEXIST);
    HVT_OK(hvc_port80_create(a.vm, &dev));
    HVT_ERR(hvc_vm_add_io_handler(a.vm, HVC_IO_PIO, 0x80, 1, nop, NULL),
            -EEXIST);
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = hvc_device_name(dev);
    HVT_ERR(hvc_serial_create(a.vm, &so, NULL), -EEXIST);
    HVT_OK(hvc_vcpu_create(a.vm, 0, &v));
    HVT_ERR(hvc_vcpu_create(a.vm, 0, &v), -EEXIST);
    hvc_virtio_mmio m = {0x100000, 5, 0}; /* inside RAM */
    HVT_ERR(hvc_virtio_rng_create(a.vm, &m, NULL, NULL), -EEXIST);
    cr_assert(strstr(hvc_last_error(), "overlaps RAM"), "%s", hvc_last_error());
    m.base = 0xd0000000;
    HVT_OK(hvc_virtio_rng_create(a.vm, &m, NULL, NULL));
    HVT_ERR(hvc_virtio_rng_create(a.vm, &m, NULL, NULL), -EEXIST);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    HVT_OK(hvc_vm_watch_fd(a.vm, fds[0], HVC_FD_READABLE, on_fd, NULL));
    HVT_ERR(hvc_vm_watch_fd(a.vm, fds[0], HVC_FD_READABLE, on_fd, NULL),
            -EEXIST);

    /* and a call that succeeds leaves the last message alone */
    char before[256];
    snprintf(before, sizeof(before), "%s", hvc_last_error());
    HVT_OK(hvc_vm_unwatch_fd(a.vm, fds[0]));
    cr_assert_str_eq(hvc_last_error(), before);
    close(fds[0]);
    close(fds[1]);
    hvt_close(&a);
    hvt_close(&b);
}
