/* The backend's vCPU calls as the rest of the core makes them: each goes
 * through hvi_vcpu_call(), which runs it inline, or on the vCPU's own
 * thread when the backend binds vCPUs to threads (vcpu_forward.c). Only
 * the run loop (on that thread already) and vcpu_kick (any thread) call
 * the backend's vCPU ops directly. */
#include "internal.h"
#include "tsc_internal.h"

struct bk_args {
    const hvc_reg *ids;
    uint64_t *values;
    const uint64_t *cvalues;
    size_t count;
    hvc_reg id;
    hvc_x86_segment *seg;
    const hvc_x86_segment *cseg;
    void *buf;
    const void *cbuf;
    size_t length;
    size_t *size;
    uint32_t kind;
    uint64_t offset;
    uint64_t *offset_out;
};

#define OPS(v) ((v)->vm->ops)

static int get_regs(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_get_regs(v->priv, a->ids, a->values, a->count);
}

int hvi_bk_get_regs(hvc_vcpu *v, const hvc_reg *ids, uint64_t *values,
                    size_t count)
{
    struct bk_args a = {.ids = ids, .values = values, .count = count};
    return hvi_vcpu_call(v, get_regs, &a);
}

static int set_regs(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_set_regs(v->priv, a->ids, a->cvalues, a->count);
}

int hvi_bk_set_regs(hvc_vcpu *v, const hvc_reg *ids, const uint64_t *values,
                    size_t count)
{
    struct bk_args a = {.ids = ids, .cvalues = values, .count = count};
    return hvi_vcpu_call(v, set_regs, &a);
}

static int get_segment(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_get_segment(v->priv, a->id, a->seg);
}

int hvi_bk_get_segment(hvc_vcpu *v, hvc_reg id, hvc_x86_segment *seg)
{
    struct bk_args a = {.id = id, .seg = seg};
    return hvi_vcpu_call(v, get_segment, &a);
}

static int set_segment(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_set_segment(v->priv, a->id, a->cseg);
}

int hvi_bk_set_segment(hvc_vcpu *v, hvc_reg id, const hvc_x86_segment *seg)
{
    struct bk_args a = {.id = id, .cseg = seg};
    return hvi_vcpu_call(v, set_segment, &a);
}

static int fpu_size(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_fpu_size(v->priv, a->size);
}

int hvi_bk_fpu_size(hvc_vcpu *v, size_t *size)
{
    struct bk_args a = {.size = size};
    return hvi_vcpu_call(v, fpu_size, &a);
}

static int get_fpu(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_get_fpu(v->priv, a->buf, a->length);
}

int hvi_bk_get_fpu(hvc_vcpu *v, void *buf, size_t length)
{
    struct bk_args a = {.buf = buf, .length = length};
    return hvi_vcpu_call(v, get_fpu, &a);
}

static int set_fpu(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_set_fpu(v->priv, a->cbuf, a->length);
}

int hvi_bk_set_fpu(hvc_vcpu *v, const void *buf, size_t length)
{
    struct bk_args a = {.cbuf = buf, .length = length};
    return hvi_vcpu_call(v, set_fpu, &a);
}

static int set_runnable(hvc_vcpu *v, void *p)
{
    (void)p;
    return OPS(v)->vcpu_set_runnable(v->priv);
}

int hvi_bk_set_runnable(hvc_vcpu *v)
{
    return hvi_vcpu_call(v, set_runnable, NULL);
}

static int flush(hvc_vcpu *v, void *p)
{
    (void)p;
    return OPS(v)->vcpu_flush(v->priv);
}

int hvi_bk_flush(hvc_vcpu *v)
{
    return hvi_vcpu_call(v, flush, NULL);
}

static int state_size(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_state_size(v->priv, a->kind, a->size);
}

int hvi_bk_state_size(hvc_vcpu *v, uint32_t kind, size_t *size)
{
    struct bk_args a = {.kind = kind, .size = size};
    return hvi_vcpu_call(v, state_size, &a);
}

static int get_state(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_get_state(v->priv, a->kind, a->buf, a->length);
}

int hvi_bk_get_state(hvc_vcpu *v, uint32_t kind, void *buf, size_t length)
{
    struct bk_args a = {.kind = kind, .buf = buf, .length = length};
    return hvi_vcpu_call(v, get_state, &a);
}

static int set_state(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return OPS(v)->vcpu_set_state(v->priv, a->kind, a->cbuf, a->length);
}

int hvi_bk_set_state(hvc_vcpu *v, uint32_t kind, const void *buf,
                     size_t length)
{
    struct bk_args a = {.kind = kind, .cbuf = buf, .length = length};
    return hvi_vcpu_call(v, set_state, &a);
}

static int get_offset(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return hvi_tsc_ops(v->vm)->vcpu_get_offset(v->priv, a->offset_out);
}

int hvi_bk_get_offset(hvc_vcpu *v, uint64_t *offset)
{
    struct bk_args a = {.offset_out = offset};
    return hvi_vcpu_call(v, get_offset, &a);
}

static int set_offset(hvc_vcpu *v, void *p)
{
    struct bk_args *a = p;
    return hvi_tsc_ops(v->vm)->vcpu_set_offset(v->priv, a->offset);
}

int hvi_bk_set_offset(hvc_vcpu *v, uint64_t offset)
{
    struct bk_args a = {.offset = offset};
    return hvi_vcpu_call(v, set_offset, &a);
}

static int apply_frequency(hvc_vcpu *v, void *p)
{
    (void)p;
    return hvi_tsc_ops(v->vm)->vcpu_apply_frequency(v->priv);
}

int hvi_bk_apply_frequency(hvc_vcpu *v)
{
    return hvi_vcpu_call(v, apply_frequency, NULL);
}
