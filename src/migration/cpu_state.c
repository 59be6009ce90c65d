/* VCPU and IRQCHIP sections: the backend's state blobs, in the
 * architectural layouts of src/arch/x86/arch_state.h, as tagged fields
 * (tag = hvc_backend_state kind), in the order a restore must apply them. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The restore order of hvc_backend_state (include/hvcore/sys/backend.h). */
static const uint32_t vcpu_order[] = {
    HVC_BACKEND_VCPU_ARCH_CPUID, HVC_BACKEND_VCPU_ARCH_SREGS,
    HVC_BACKEND_VCPU_ARCH_REGS,  HVC_BACKEND_VCPU_ARCH_XSAVE,
    HVC_BACKEND_VCPU_ARCH_MSRS,  HVC_BACKEND_VCPU_ARCH_LAPIC,
    HVC_BACKEND_VCPU_ARCH_EVENTS};
static const uint32_t vm_order[] = {
    HVC_BACKEND_VM_ARCH_PIC_MASTER, HVC_BACKEND_VM_ARCH_PIC_SLAVE,
    HVC_BACKEND_VM_ARCH_IOAPIC, HVC_BACKEND_VM_ARCH_PIT};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_KINDS 16

/* Where blobs come from and go to: a vCPU or the VM. */
struct blobs {
    const char *what;
    const uint32_t *kinds;
    size_t nr_kinds;
    int (*size)(void *obj, uint32_t kind, size_t *n);
    int (*get)(void *obj, uint32_t kind, void *buf, size_t n);
    int (*set)(void *obj, uint32_t kind, const void *buf, size_t n);
    void *obj;
};

static int vcpu_size(void *obj, uint32_t kind, size_t *n)
{
    return hvi_vcpu_state_size(obj, kind, n);
}

static int vcpu_get(void *obj, uint32_t kind, void *buf, size_t n)
{
    return hvi_vcpu_state_get(obj, kind, buf, n);
}

static int vcpu_set(void *obj, uint32_t kind, const void *buf, size_t n)
{
    return hvi_vcpu_state_set(obj, kind, buf, n);
}

static int vm_size(void *obj, uint32_t kind, size_t *n)
{
    return hvi_vm_state_size(obj, kind, n);
}

static int vm_get(void *obj, uint32_t kind, void *buf, size_t n)
{
    return hvi_vm_state_get(obj, kind, buf, n);
}

static int vm_set(void *obj, uint32_t kind, const void *buf, size_t n)
{
    return hvi_vm_state_set(obj, kind, buf, n);
}

static struct blobs vcpu_blobs(hvc_vcpu *v)
{
    return (struct blobs){"vCPU",    vcpu_order, COUNT(vcpu_order),
                          vcpu_size, vcpu_get,   vcpu_set,
                          v};
}

static struct blobs vm_blobs(hvc_vm *vm)
{
    return (struct blobs){"interrupt controller",
                          vm_order,
                          COUNT(vm_order),
                          vm_size,
                          vm_get,
                          vm_set,
                          vm};
}

/* A tagged record of every blob the object has (*len 0 when none). */
static int encode(const struct blobs *b, uint8_t **out, size_t *len)
{
    size_t sizes[MAX_KINDS], total = 0;
    *out = NULL;
    *len = 0;
    for (size_t i = 0; i < b->nr_kinds; i++) {
        int r = b->size(b->obj, b->kinds[i], &sizes[i]);
        if (r < 0)
            return r;
        if (sizes[i] > HVI_MAX_SECTION / 2 / MAX_KINDS)
            return hvi_error(-EOVERFLOW,
                             "%s state %u is %zu bytes, above the stream's "
                             "bound",
                             b->what, b->kinds[i], sizes[i]);
        total += sizes[i];
    }
    if (!total)
        return 0;
    struct hvi_rec_writer w = {0};
    w.cap = total + 16 * b->nr_kinds;
    w.buf = malloc(w.cap);
    uint8_t *blob = malloc(total);
    if (!w.buf || !blob) {
        free(w.buf);
        free(blob);
        return hvi_error(-ENOMEM, "out of memory saving %s state", b->what);
    }
    int r = 0;
    for (size_t i = 0; i < b->nr_kinds && r == 0; i++) {
        if (!sizes[i])
            continue;
        r = b->get(b->obj, b->kinds[i], blob, sizes[i]);
        if (r == 0)
            hvi_rec_bytes(&w, (uint16_t)b->kinds[i], blob, (uint32_t)sizes[i]);
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

/* Applies every blob the object has, in order, from a record. */
static int apply(const struct hvi_sec *s, const struct blobs *b,
                 const uint8_t *p, size_t len)
{
    struct hvi_rec_reader rd = {p, len, b->what};
    for (size_t i = 0; i < b->nr_kinds; i++) {
        uint32_t kind = b->kinds[i];
        size_t want = 0;
        const void *blob;
        uint32_t n;
        int r = b->size(b->obj, kind, &want);
        if (r == 0 && !want)
            continue;
        if (r == 0)
            r = hvi_rec_get_bytes(&rd, (uint16_t)kind, &blob, &n);
        if (r == 0)
            r = b->set(b->obj, kind, blob, n);
        if (r < 0)
            return hvi_fail(s, r, "state %u: %s", kind, hvc_last_error());
    }
    return 0;
}

int hvi_vcpu_encode(hvc_vcpu *v, uint8_t **out, size_t *len)
{
    int r = hvi_state_supported(hvc_vcpu_vm(v));
    struct blobs b = vcpu_blobs(v);
    return r < 0 ? r : encode(&b, out, len);
}

int hvi_vcpu_apply(const struct hvi_sec *s, hvc_vcpu *v, const uint8_t *p,
                   size_t len)
{
    int r = hvi_state_supported(hvc_vcpu_vm(v));
    if (r < 0)
        return hvi_fail(s, r, "%s", hvc_last_error());
    struct blobs b = vcpu_blobs(v);
    return apply(s, &b, p, len);
}

int hvi_irqchip_encode(hvc_vm *vm, uint8_t **out, size_t *len)
{
    int r = hvi_state_supported(vm);
    struct blobs b = vm_blobs(vm);
    return r < 0 ? r : encode(&b, out, len);
}

int hvi_irqchip_apply(const struct hvi_sec *s, hvc_vm *vm, const uint8_t *p,
                      size_t len)
{
    int r = hvi_state_supported(vm);
    if (r < 0)
        return hvi_fail(s, r, "%s", hvc_last_error());
    struct blobs b = vm_blobs(vm);
    return apply(s, &b, p, len);
}
