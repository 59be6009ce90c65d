/* VCPU and IRQCHIP sections: the backend's state blobs as tagged fields
 * (tag = hv_backend_state kind), in the order a restore must apply them. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The order of hv_backend_state: FPU goes after REGS. */
static const uint32_t vcpu_order[] = {
    HV_BACKEND_VCPU_CPUID,  HV_BACKEND_VCPU_SREGS,
    HV_BACKEND_VCPU_REGS,   HVM_VCPU_FPU,
    HV_BACKEND_VCPU_XCRS,   HV_BACKEND_VCPU_MSRS,
    HV_BACKEND_VCPU_LAPIC,  HV_BACKEND_VCPU_MP_STATE,
    HV_BACKEND_VCPU_EVENTS, HV_BACKEND_VCPU_DEBUGREGS};
#define NR_VCPU (sizeof(vcpu_order) / sizeof(vcpu_order[0]))

static const uint32_t vm_order[] = {HV_BACKEND_VM_PIC_MASTER,
                                    HV_BACKEND_VM_PIC_SLAVE,
                                    HV_BACKEND_VM_IOAPIC, HV_BACKEND_VM_PIT};
#define NR_VM (sizeof(vm_order) / sizeof(vm_order[0]))

static bool has_state_ops(const hv_backend_ops *ops)
{
    return ops->version >= 3 && ops->vcpu_flush && ops->vcpu_state_size &&
           ops->vcpu_get_state && ops->vcpu_set_state && ops->vm_state_size &&
           ops->vm_get_state && ops->vm_set_state;
}

static int no_ops(const hv_backend_ops *ops)
{
    return hvi_error(-ENOTSUP, "backend %s cannot save or restore VM state",
                     ops->name);
}

static int vcpu_size(hv_vcpu *v, uint32_t kind, size_t *n)
{
    const hv_backend_ops *ops = v->vm->ops;
    if (kind == HVM_VCPU_FPU)
        return ops->vcpu_fpu_size(v->priv, n);
    return ops->vcpu_state_size(v->priv, kind, n);
}

int hvm_vcpu_encode(hv_vcpu *v, uint8_t **out, size_t *len)
{
    const hv_backend_ops *ops = v->vm->ops;
    if (!has_state_ops(ops))
        return no_ops(ops);
    size_t sizes[NR_VCPU], total = 0;
    for (size_t i = 0; i < NR_VCPU; i++) {
        int r = vcpu_size(v, vcpu_order[i], &sizes[i]);
        if (r < 0)
            return r;
        if (sizes[i] > HVM_MAX_SECTION / 2)
            return hvi_error(-EOVERFLOW,
                             "vCPU %u: state %u is %zu bytes, above the "
                             "stream's bound",
                             v->id, vcpu_order[i], sizes[i]);
        total += sizes[i];
    }
    uint8_t *blob = malloc(total ? total : 1);
    struct hvi_rec_writer w = {0};
    w.cap = total + 16 * NR_VCPU;
    w.buf = malloc(w.cap);
    if (!blob || !w.buf) {
        free(blob);
        free(w.buf);
        return hvi_error(-ENOMEM, "out of memory saving vCPU %u", v->id);
    }
    int r = 0;
    size_t at = 0;
    for (size_t i = 0; i < NR_VCPU && r == 0; i++) {
        if (!sizes[i])
            continue;
        uint32_t kind = vcpu_order[i];
        r = kind == HVM_VCPU_FPU
                ? ops->vcpu_get_fpu(v->priv, blob + at, sizes[i])
                : ops->vcpu_get_state(v->priv, kind, blob + at, sizes[i]);
        if (r == 0)
            hvi_rec_bytes(&w, (uint16_t)kind, blob + at, (uint32_t)sizes[i]);
        at += sizes[i];
    }
    free(blob);
    if (r < 0) {
        free(w.buf);
        return r;
    }
    *out = w.buf;
    *len = w.len;
    return 0;
}

int hvm_vcpu_apply(const struct hvm_sec *s, hv_vcpu *v, const uint8_t *p,
                   size_t len)
{
    const hv_backend_ops *ops = v->vm->ops;
    if (!has_state_ops(ops))
        return hvm_fail(s, no_ops(ops), "%s", hv_last_error());
    struct hvi_rec_reader rd = {p, len, "vCPU"};
    for (size_t i = 0; i < NR_VCPU; i++) {
        uint32_t kind = vcpu_order[i];
        size_t want;
        int r = vcpu_size(v, kind, &want);
        if (r < 0)
            return hvm_fail(s, r, "%s", hv_last_error());
        if (!want)
            continue;
        const void *blob;
        uint32_t n;
        if ((r = hvi_rec_get_bytes(&rd, (uint16_t)kind, &blob, &n)) < 0)
            return hvm_fail(s, r, "state %u: %s", kind, hv_last_error());
        if (kind == HVM_VCPU_FPU) {
            if (n != want)
                return hvm_fail(s, -EBADMSG,
                                "XSAVE state of %u bytes, this host's is "
                                "%zu",
                                n, want);
            r = ops->vcpu_set_fpu(v->priv, blob, n);
        } else {
            r = ops->vcpu_set_state(v->priv, kind, blob, n);
        }
        if (r < 0)
            return hvm_fail(s, r, "state %u: %s", kind, hv_last_error());
    }
    return 0;
}

int hvm_irqchip_encode(hv_vm *vm, uint8_t **out, size_t *len)
{
    const hv_backend_ops *ops = vm->ops;
    *out = NULL;
    *len = 0;
    if (!has_state_ops(ops))
        return no_ops(ops);
    size_t sizes[NR_VM], total = 0;
    for (size_t i = 0; i < NR_VM; i++) {
        int r = ops->vm_state_size(vm->priv, vm_order[i], &sizes[i]);
        if (r < 0)
            return r;
        if (sizes[i] > HVM_MAX_SECTION / 8)
            return hvi_error(-EOVERFLOW, "VM state %u is %zu bytes",
                             vm_order[i], sizes[i]);
        total += sizes[i];
    }
    if (!total)
        return 0;
    struct hvi_rec_writer w = {0};
    w.cap = 2 * total + 16 * NR_VM;
    w.buf = malloc(w.cap);
    uint8_t *blob = malloc(total);
    if (!w.buf || !blob) {
        free(w.buf);
        free(blob);
        return hvi_error(-ENOMEM, "out of memory saving the interrupt "
                                  "controllers");
    }
    int r = 0;
    for (size_t i = 0; i < NR_VM && r == 0; i++) {
        if (!sizes[i])
            continue;
        r = ops->vm_get_state(vm->priv, vm_order[i], blob, sizes[i]);
        if (r == 0)
            hvi_rec_bytes(&w, (uint16_t)vm_order[i], blob, (uint32_t)sizes[i]);
    }
    free(blob);
    if (r < 0) {
        free(w.buf);
        return r;
    }
    *out = w.buf;
    *len = w.len;
    return 0;
}

int hvm_irqchip_apply(const struct hvm_sec *s, hv_vm *vm, const uint8_t *p,
                      size_t len)
{
    const hv_backend_ops *ops = vm->ops;
    if (!has_state_ops(ops))
        return hvm_fail(s, no_ops(ops), "%s", hv_last_error());
    struct hvi_rec_reader rd = {p, len, "interrupt controller"};
    for (size_t i = 0; i < NR_VM; i++) {
        size_t want;
        int r = ops->vm_state_size(vm->priv, vm_order[i], &want);
        if (r < 0)
            return hvm_fail(s, r, "%s", hv_last_error());
        if (!want)
            continue;
        const void *blob;
        uint32_t n;
        if ((r = hvi_rec_get_bytes(&rd, (uint16_t)vm_order[i], &blob, &n)) <
                0 ||
            (r = ops->vm_set_state(vm->priv, vm_order[i], blob, n)) < 0)
            return hvm_fail(s, r, "state %u: %s", vm_order[i], hv_last_error());
    }
    return 0;
}
