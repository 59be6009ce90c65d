/* tests/hvf_host: the interrupt window on a KVM that does not report it
 * RFLAGS.TF underneath) until it can take an interrupt, and the HLTs and
 * event deliveries on the way are done as VMX would do them. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <string.h>
#include <sys/ioctl.h>

#define RFLAGS_TF (1ull << 8)
#define RFLAGS_IF (1ull << 9)
#define RFLAGS_NT (1ull << 14)
#define RFLAGS_RF (1ull << 16)
#define RFLAGS_VM (1ull << 17)

int hvfh_interruptible(struct hvfh_vcpu *v)
{
    struct kvm_vcpu_events e;
    if (hvfh_load_regs(v) || ioctl(v->fd, KVM_GET_VCPU_EVENTS, &e))
        return 0;
    return (v->regs.rflags & RFLAGS_IF) && !e.interrupt.shadow;
}

int hvfh_at_hlt(struct hvfh_vcpu *v)
{
    uint8_t b = 0;
    if (hvfh_load_regs(v) || hvfh_load_sregs(v) || v->sregs.ss.dpl != 0)
        return 0;
    return !hvfh_read_linear(v, v->sregs.cs.base + v->regs.rip, &b, 1) &&
           b == 0xf4;
}

void hvfh_single_step(struct hvfh_vcpu *v, int on)
{
    struct kvm_guest_debug d;
    memset(&d, 0, sizeof(d));
    if (on)
        d.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
    ioctl(v->fd, KVM_SET_GUEST_DEBUG, &d);
}

int hvfh_deliver(struct hvfh_vcpu *v, uint64_t info)
{
    unsigned type = (info >> 8) & 7, vec = info & 0xff;
    /* external interrupt, NMI, hardware exception */
    if ((type != 0 && type != 2 && type != 3) || (type == 2 && vec != 2) ||
        hvfh_load_regs(v) || hvfh_load_sregs(v))
        return 0;
    struct kvm_sregs *s = &v->sregs;
    if (!(s->efer & (1u << 10)) || !s->cs.l || vec * 16u + 15 > s->idt.limit)
        return 0;
    uint32_t g[4];
    if (hvfh_read_linear(v, s->idt.base + vec * 16u, g, sizeof(g)))
        return 0;
    unsigned gtype = (g[1] >> 8) & 0xf, sel = g[0] >> 16;
    /* present 64-bit interrupt or trap gate, no IST, to the running code
     * segment (so no privilege change, no stack switch) */
    if (!(g[1] & (1u << 15)) || (gtype != 0xe && gtype != 0xf) || (g[1] & 7) ||
        sel != s->cs.selector)
        return 0;
    struct kvm_vcpu_events e;
    if (type == 2 && ioctl(v->fd, KVM_GET_VCPU_EVENTS, &e))
        return 0;
    /* the frame: [error code,] RIP, CS, RFLAGS, RSP, SS; a fault saves
     * RFLAGS with RF set */
    int err = type == 3 && (info & IRQ_INFO_ERROR_VALID);
    uint64_t rsp = (v->regs.rsp & ~15ull) - 40 - (err ? 8 : 0);
    uint64_t flags = v->regs.rflags | (type == 3 && vec != 1 ? RFLAGS_RF : 0);
    uint64_t frame[6] = {v->regs.rip, s->cs.selector, flags,
                         v->regs.rsp, s->ss.selector, 0};
    if (err) {
        memmove(frame + 1, frame, 5 * sizeof(frame[0]));
        frame[0] = (uint32_t)v->vmcs[VMCS_CTRL_VMENTRY_EXC_ERROR];
    }
    if (hvfh_write_linear(v, rsp, frame, (5 + (size_t)err) * 8))
        return 0;
    if (type == 2) { /* NMIs are blocked until the handler's IRET */
        e.nmi.masked = 1;
        e.flags = 0;
        if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &e))
            return 0;
    }
    v->regs.rflags &= ~(RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM);
    if (gtype == 0xe)
        v->regs.rflags &= ~RFLAGS_IF;
    v->regs.rsp = rsp;
    v->regs.rip = (g[0] & 0xffff) | (g[1] & 0xffff0000u) | (uint64_t)g[2] << 32;
    v->regs_dirty = 1;
    return 1;
}

int hvfh_step_iret(struct hvfh_vcpu *v)
{
    uint8_t op[2];
    if (hvfh_load_regs(v) || hvfh_load_sregs(v))
        return -1;
    struct kvm_sregs *s = &v->sregs;
    if (!(s->efer & (1u << 10)) || !s->cs.l || s->cs.dpl != 0 ||
        hvfh_read_linear(v, v->regs.rip, op, 2) || op[0] != 0x48 ||
        op[1] != 0xcf)
        return 0;
    uint64_t f[5]; /* RIP, CS, RFLAGS, RSP, SS */
    if (hvfh_read_linear(v, v->regs.rsp, f, sizeof(f)) ||
        f[1] != s->cs.selector || f[4] != s->ss.selector)
        return 0; /* a privilege or segment change: left to KVM */
    struct kvm_vcpu_events e;
    if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &e))
        return -1;
    if (e.nmi.masked) { /* IRET ends NMI blocking */
        e.nmi.masked = 0;
        e.flags = 0;
        if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &e))
            return -1;
    }
    /* the bits IRET can set at CPL 0 in 64-bit mode; bit 1 is always 1 */
    v->regs.rflags = (f[2] & 0x3f7fd7ull) | 2;
    v->regs.rip = f[0];
    v->regs.rsp = f[3];
    v->regs_dirty = 1;
    return 1;
}
