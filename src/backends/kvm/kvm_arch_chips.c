/* KVM backend: the in-kernel interrupt controllers and PIT in the
 * architectural layouts of src/arch/x86/arch_state.h (struct hvi_x86_pic,
 * hvi_x86_ioapic, hvi_x86_pit), converted from and to KVM_GET/SET_IRQCHIP
 * and KVM_GET/SET_PIT2. A blob to set is copied and checked
 * (arch_state.c) before KVM sees it. */
#include "kvm.h"

#include "../../arch/x86/arch_state.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#ifndef KVM_PIT_FLAGS_SPEAKER_DATA_ON
#define KVM_PIT_FLAGS_SPEAKER_DATA_ON 0x00000002
#endif

/* Redirection entry bits 55:17 are reserved: not saved. */
#define REDIR_RESERVED 0x00fffffffffe0000ull

size_t hvi_kvm_chip_size(const struct hvi_kvm_vm *vm, uint32_t kind)
{
    switch (kind) {
    case HVC_BACKEND_VM_ARCH_PIC_MASTER:
    case HVC_BACKEND_VM_ARCH_PIC_SLAVE:
        return vm->has_irqchip ? sizeof(struct hvi_x86_pic) : 0;
    case HVC_BACKEND_VM_ARCH_IOAPIC:
        return vm->has_irqchip ? sizeof(struct hvi_x86_ioapic) : 0;
    case HVC_BACKEND_VM_ARCH_PIT:
        return vm->has_pit ? sizeof(struct hvi_x86_pit) : 0;
    }
    return 0;
}

static const char *chip_name(uint32_t kind)
{
    switch (kind) {
    case HVC_BACKEND_VM_ARCH_PIC_MASTER: return "PIC master";
    case HVC_BACKEND_VM_ARCH_PIC_SLAVE: return "PIC slave";
    case HVC_BACKEND_VM_ARCH_IOAPIC: return "IOAPIC";
    default: return "PIT";
    }
}

/* KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC are 0, 1, 2 in kind order. */
static uint32_t chip_id(uint32_t kind)
{
    return kind - HVC_BACKEND_VM_ARCH_PIC_MASTER;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* KVM's ktime_get() */
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void pic_from_kvm(struct hvi_x86_pic *a, const struct kvm_pic_state *k)
{
    a->irr = k->irr;
    a->isr = k->isr;
    a->imr = k->imr;
    a->last_irr = k->last_irr;
    a->priority_add = k->priority_add;
    a->irq_base = k->irq_base;
    a->read_reg_select = k->read_reg_select;
    a->poll = k->poll;
    a->special_mask = k->special_mask;
    a->init_state = k->init_state;
    a->auto_eoi = k->auto_eoi;
    a->rotate_on_auto_eoi = k->rotate_on_auto_eoi;
    a->special_fully_nested = k->special_fully_nested_mode;
    a->init4 = k->init4;
    a->elcr = k->elcr;
    a->elcr_mask = k->elcr_mask;
}

static void pic_to_kvm(const struct hvi_x86_pic *a, struct kvm_pic_state *k)
{
    k->irr = a->irr;
    k->isr = a->isr;
    k->imr = a->imr;
    k->last_irr = a->last_irr;
    k->priority_add = a->priority_add;
    k->irq_base = a->irq_base;
    k->read_reg_select = a->read_reg_select;
    k->poll = a->poll;
    k->special_mask = a->special_mask;
    k->init_state = a->init_state;
    k->auto_eoi = a->auto_eoi;
    k->rotate_on_auto_eoi = a->rotate_on_auto_eoi;
    k->special_fully_nested_mode = a->special_fully_nested;
    k->init4 = a->init4;
    k->elcr = a->elcr;
    k->elcr_mask = a->elcr_mask;
}

static void ioapic_from_kvm(struct hvi_x86_ioapic *a,
                            const struct kvm_ioapic_state *k)
{
    a->base_address = k->base_address;
    a->id = k->id;
    a->ioregsel = k->ioregsel;
    a->irr = k->irr;
    for (uint32_t i = 0; i < HVI_X86_IOAPIC_PINS; i++)
        a->redir[i] = k->redirtbl[i].bits & ~REDIR_RESERVED;
}

static void ioapic_to_kvm(const struct hvi_x86_ioapic *a,
                          struct kvm_ioapic_state *k)
{
    k->base_address = a->base_address;
    k->id = a->id;
    k->ioregsel = a->ioregsel;
    k->irr = a->irr;
    for (uint32_t i = 0; i < HVI_X86_IOAPIC_PINS; i++)
        k->redirtbl[i].bits = a->redir[i];
}

static void pit_from_kvm(struct hvi_x86_pit *a, const struct kvm_pit_state2 *k)
{
    int64_t now = now_ns();
    a->flags = k->flags & HVI_X86_PIT_FLAGS;
    for (int i = 0; i < 3; i++) {
        const struct kvm_pit_channel_state *c = &k->channels[i];
        struct hvi_x86_pit_channel *d = &a->channels[i];
        d->count = c->count;
        d->latched_count = c->latched_count;
        d->count_latched = c->count_latched;
        d->status_latched = c->status_latched;
        d->status = c->status;
        d->read_state = c->read_state;
        d->write_state = c->write_state;
        d->write_latch = c->write_latch;
        d->rw_mode = c->rw_mode;
        d->mode = c->mode;
        d->bcd = c->bcd;
        d->gate = c->gate;
        d->elapsed_ns =
            now > c->count_load_time ? (uint64_t)(now - c->count_load_time) : 0;
    }
}

/* KVM reloads each count at KVM_SET_PIT2 and times it from then: the
 * elapsed time cannot be given back. */
static void pit_to_kvm(const struct hvi_x86_pit *a, struct kvm_pit_state2 *k)
{
    int64_t now = now_ns();
    k->flags = a->flags;
    for (int i = 0; i < 3; i++) {
        const struct hvi_x86_pit_channel *c = &a->channels[i];
        struct kvm_pit_channel_state *d = &k->channels[i];
        d->count = c->count;
        d->latched_count = c->latched_count;
        d->count_latched = c->count_latched;
        d->status_latched = c->status_latched;
        d->status = c->status;
        d->read_state = c->read_state;
        d->write_state = c->write_state;
        d->write_latch = c->write_latch;
        d->rw_mode = c->rw_mode;
        d->mode = c->mode;
        d->bcd = c->bcd;
        d->gate = c->gate;
        d->count_load_time = now - (int64_t)c->elapsed_ns;
    }
}

int hvi_kvm_chip_get(struct hvi_kvm_vm *vm, uint32_t kind, void *buf,
                     size_t length)
{
    union {
        struct hvi_x86_pic pic;
        struct hvi_x86_ioapic ioapic;
        struct hvi_x86_pit pit;
    } a;
    memset(&a, 0, sizeof(a));
    size_t n = hvi_kvm_chip_size(vm, kind);
    if (kind == HVC_BACKEND_VM_ARCH_PIT) {
        struct kvm_pit_state2 k;
        if (ioctl(vm->fd, KVM_GET_PIT2, &k) < 0)
            return hvi_kvm_state_fail(kind, "KVM_GET_PIT2", errno);
        pit_from_kvm(&a.pit, &k);
    } else {
        struct kvm_irqchip k;
        memset(&k, 0, sizeof(k));
        k.chip_id = chip_id(kind);
        if (ioctl(vm->fd, KVM_GET_IRQCHIP, &k) < 0)
            return hvi_kvm_state_fail(kind, "KVM_GET_IRQCHIP", errno);
        if (kind == HVC_BACKEND_VM_ARCH_IOAPIC)
            ioapic_from_kvm(&a.ioapic, &k.chip.ioapic);
        else
            pic_from_kvm(&a.pic, &k.chip.pic);
    }
    hvi_x86_state_init((struct hvi_x86_state_hdr *)&a, n);
    memcpy(buf, &a, length < n ? length : n);
    return 0;
}

int hvi_kvm_chip_set(struct hvi_kvm_vm *vm, uint32_t kind, const void *buf,
                     size_t length)
{
    union {
        struct hvi_x86_pic pic;
        struct hvi_x86_ioapic ioapic;
        struct hvi_x86_pit pit;
    } a;
    const char *name = chip_name(kind);
    if (length > sizeof(a))
        return hvi_error(-EINVAL, "%s state is %zu bytes, not %zu", name,
                         length, hvi_kvm_chip_size(vm, kind));
    memset(&a, 0, sizeof(a));
    memcpy(&a, buf, length);
    int r;
    if (kind == HVC_BACKEND_VM_ARCH_PIT) {
        if ((r = hvi_x86_check_pit(&a.pit, length)) < 0)
            return r;
        struct kvm_pit_state2 k;
        memset(&k, 0, sizeof(k));
        pit_to_kvm(&a.pit, &k);
        if (ioctl(vm->fd, KVM_SET_PIT2, &k) < 0) {
            int e = errno;
            return hvi_error(-e, "PIT state: KVM refused it (flags 0x%x): %s",
                             k.flags, hvc_strerror(-e));
        }
        return 0;
    }
    struct kvm_irqchip k;
    memset(&k, 0, sizeof(k));
    k.chip_id = chip_id(kind);
    if (kind == HVC_BACKEND_VM_ARCH_IOAPIC) {
        if ((r = hvi_x86_check_ioapic(&a.ioapic, length)) < 0)
            return r;
        ioapic_to_kvm(&a.ioapic, &k.chip.ioapic);
    } else {
        if ((r = hvi_x86_check_pic(name, &a.pic, length)) < 0)
            return r;
        pic_to_kvm(&a.pic, &k.chip.pic);
    }
    if (ioctl(vm->fd, KVM_SET_IRQCHIP, &k) < 0) {
        int e = errno;
        return hvi_error(-e, "%s state: KVM refused it (chip %u): %s", name,
                         k.chip_id, hvc_strerror(-e));
    }
    return 0;
}
