/* The core's eventfd fallbacks (core17, src/core/notify.c): with the KVM
 * backend's irqfd and ioeventfd hidden (test-only HVCORE_KVM_NO_EVENTFD=1,
 * src/backends/kvm/kvm_strict.c), interrupt eventfds and doorbells still
 * work, carried by the core: a doorbell's write exit is matched in the run
 * loop and signals its eventfd, an interrupt eventfd is watched on the
 * event thread and raises its line. A virtio-blk device driven by a real
 * guest on interrupts (tests/virtio/) must do all its I/O that way; the
 * assertion is both that it works and that the fallbacks' counters moved.
 * White-box (static library) for those counters. */
#include "virtio/vthost.h"

#include "../src/core/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECTORS 256u
#define JUNK 0x6a756e6bu

static void open_no_eventfd(vt *v, const char *guest)
{
    setenv("HVCORE_KVM_NO_EVENTFD", "1", 1);
    vt_open(v, guest);
    unsetenv("HVCORE_KVM_NO_EVENTFD");
    cr_assert_null(v->t.vm->ops->vm_irqfd, "the variant kept irqfd");
    cr_assert_null(v->t.vm->ops->vm_ioeventfd, "the variant kept ioeventfd");
}

TestSuite(eventfd_fallback, .timeout = 120);

Test(eventfd_fallback, virtio_blk_on_interrupts)
{
    vt v;
    open_no_eventfd(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio.base = VT_BLK_BASE;
    o.mmio.irq = VT_BLK_IRQ;
    o.fd = fd;
    HVT_OK(hvc_virtio_blk_create(v.t.vm, &o, NULL));
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, VT_IRQ);
    for (uint32_t k = 0; k < 8; k++)
        vt_op(&v, VT_T_OUT, k * 8, 8, 100 + k, 1, 0);
    vt_op(&v, VT_T_FLUSH, 0, 0, 0, 0, 0);
    for (uint32_t k = 0; k < 8; k++)
        vt_op(&v, VT_T_IN, k * 8, 8, 100 + k, 2, 0);
    vt_run_ok(&v);
    for (uint32_t i = 0; i < 17; i++)
        vt_assert_res(&v, i, 0, i < 9 ? 1 : 8 * 512 + 1);
    for (uint32_t k = 0; k < 8; k++)
        vt_assert_file(fd, k * 8, 8, 100 + k);
    cr_assert_geq(v.out.irq_count, 1, "no interrupt reached the guest");
    unsigned long rang = atomic_load(&v.t.vm->fallback_doorbells);
    unsigned long irqs = atomic_load(&v.t.vm->fallback_irqs);
    cr_log_info("fallbacks: %lu doorbell writes, %lu interrupt signals", rang,
                irqs);
    cr_assert_geq(rang, 1, "no QueueNotify went through the core's doorbell");
    cr_assert_geq(irqs, 1, "no interrupt went through the core's irqfd");
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* The doorbell API itself: a port doorbell with a data match rings only
 * for its value; other writes reach the I/O handler as before. */
struct ring {
    atomic_int rung;
};

static void on_ring(void *opaque, const hvc_doorbell *db)
{
    struct ring *r = opaque;
    (void)db;
    atomic_fetch_add(&r->rung, 1);
}

static atomic_int handled;

static int port_handler(void *opaque, hvc_vcpu *vcpu, uint64_t offset,
                        void *data, uint32_t size, int is_write)
{
    (void)opaque;
    (void)vcpu;
    (void)offset;
    atomic_fetch_add(&handled, 1);
    if (!is_write)
        memset(data, 0, size);
    return 0;
}

Test(eventfd_fallback, port_doorbell_with_data_match)
{
    hvt t;
    setenv("HVCORE_KVM_NO_EVENTFD", "1", 1);
    hvt_open(&t, 0);
    unsetenv("HVCORE_KVM_NO_EVENTFD");
    hvt_load(t.vm, "io64");
    static struct ring r;
    atomic_store(&r.rung, 0);
    atomic_store(&handled, 0);
    /* io64 first writes 0x11 (1 byte) to PORT_DATA, then 2 and 4 bytes */
    hvc_doorbell db = {HVC_IO_PIO, 1, PORT_DATA, HVC_DOORBELL_DATAMATCH, 0,
                       0x11};
    HVT_OK(hvc_vm_add_doorbell(t.vm, &db, on_ring, &r));
    HVT_OK(hvc_vm_add_io_handler(t.vm, HVC_IO_PIO, PORT_DATA, 4, port_handler,
                                 NULL));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(v, &e)); /* up to the first unclaimed access */
    for (int i = 0; i < 2000 && atomic_load(&r.rung) == 0; i++)
        usleep(1000);
    cr_assert_eq(atomic_load(&r.rung), 1, "the doorbell rang %d times",
                 atomic_load(&r.rung));
    cr_assert_eq(atomic_load(&t.vm->fallback_doorbells), 1);
    /* the 2- and 4-byte OUTs and the INs went to the handler */
    cr_assert_geq(atomic_load(&handled), 2);
    HVT_ERR(hvc_vm_add_doorbell(t.vm, &db, on_ring, &r), -EEXIST);
    HVT_OK(hvc_vm_remove_doorbell(t.vm, &db));
    cr_assert_eq(atomic_load(&t.vm->nr_emulated_doorbells), 0);
    hvt_close(&t);
}
