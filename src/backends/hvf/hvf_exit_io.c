/* I/O instruction exits (IN, OUT, INS, OUTS, with REP) decoded from the
 * exit qualification, instruction length and instruction information, and
 * their completion on the next entry: the data of an IN goes to RAX, the
 * data of an INS to guest memory; RSI/RDI/RCX step; RIP steps over the
 * instruction once it is done (a plain OUT at its exit, as KVM's does). A
 * REP string instruction is served a page-bounded batch per exit; the
 * guest re-executes it for the rest. */
#include "hvf.h"

#include "hvf_vmx.h"

#include <errno.h>
#include <string.h>

#define DF (1ull << 10)

static uint64_t mask_of(unsigned addr_size)
{
    return addr_size == 8 ? ~0ull : (1ull << (addr_size * 8)) - 1;
}

/* A register write that keeps the bits outside the address size (16-bit)
 * or clears them (32-bit, as any 32-bit write does in 64-bit mode). */
static uint64_t merge(uint64_t old, uint64_t val, unsigned addr_size)
{
    if (addr_size == 2)
        return (old & ~0xffffull) | (val & 0xffff);
    return val & mask_of(addr_size);
}

static bool long_mode_code(struct hvi_hvf_vcpu *v)
{
    return (hvi_hvf_vmcs(v, VMCS_GUEST_IA32_EFER) & HVI_EFER_LMA) &&
           (hvi_hvf_vmcs(v, VMCS_GUEST_CS_AR) & (1u << 13));
}

static int string_setup(struct hvi_hvf_vcpu *v, struct hvi_hvf_pio *p,
                        hvc_exit *exit)
{
    uint64_t info = hvi_hvf_vmcs(v, VMCS_RO_VMX_INSTR_INFO);
    static const unsigned sizes[] = {2, 4, 8};
    unsigned as = (info >> 7) & 7;
    p->addr_size = as < 3 ? sizes[as] : 8;
    uint64_t rflags, idx, rcx = 1;
    int r;
    if ((r = hvi_hvf_rreg(v, HV_X86_RFLAGS, &rflags)) < 0 ||
        (r = hvi_hvf_rreg(v, p->in ? HV_X86_RDI : HV_X86_RSI, &idx)) < 0 ||
        (p->rep && (r = hvi_hvf_rreg(v, HV_X86_RCX, &rcx)) < 0))
        return r;
    p->down = rflags & DF;
    uint64_t m = mask_of(p->addr_size);
    if (p->rep)
        rcx &= m;
    if (rcx == 0) { /* REP with a zero count: nothing happens */
        int r2 = hvi_hvf_skip(v, p->insn_len);
        return r2 < 0 ? r2 : 0;
    }
    /* INS writes ES:RDI; OUTS reads seg:RSI (segment in bits 17:15). */
    unsigned seg = p->in ? 0 : (info >> 15) & 7;
    static const uint32_t base_field[] = {
        VMCS_GUEST_ES_BASE, VMCS_GUEST_CS_BASE, VMCS_GUEST_SS_BASE,
        VMCS_GUEST_DS_BASE, VMCS_GUEST_FS_BASE, VMCS_GUEST_GS_BASE};
    uint64_t base = 0;
    bool lm = long_mode_code(v);
    if (seg < 6 && (!lm || seg >= 4))
        base = hvi_hvf_vmcs(v, base_field[seg]);
    p->lin = base + (idx & m);
    if (!lm)
        p->lin &= 0xffffffffu;
    /* Up to the end of the page (or one element going down), and what
     * fits the buffer. */
    uint64_t n = 1;
    if (!p->down) {
        n = (4096 - (p->lin & 4095)) / p->size;
        if (n == 0)
            n = 1;
    }
    if (n > rcx)
        n = rcx;
    if (n > HVI_HVF_IOBUF / p->size)
        n = HVI_HVF_IOBUF / p->size;
    p->count = (uint32_t)n;
    if (!p->in &&
        (r = hvi_hvf_lin_read(v, p->lin, v->iobuf, n * p->size)) < 0) {
        exit->reason = HVC_EXIT_INTERNAL_ERROR;
        exit->u.internal.code = 1;
        exit->u.internal.ndata = 1;
        exit->u.internal.data[0] = p->lin;
        return hvi_error(-EFAULT,
                         "vCPU %u: OUTS from linear 0x%llx, which is not "
                         "mapped to RAM",
                         v->id, (unsigned long long)p->lin);
    }
    return 1;
}

int hvi_hvf_exit_io(struct hvi_hvf_vcpu *v, hvc_exit *exit)
{
    uint64_t q = hvi_hvf_vmcs(v, VMCS_RO_EXIT_QUALIFIC);
    struct hvi_hvf_pio *p = &v->pio;
    *p = (struct hvi_hvf_pio){
        .port = HVI_IO_PORT(q),
        .size = (uint8_t)HVI_IO_SIZE(q),
        .in = HVI_IO_IN(q),
        .string = HVI_IO_STRING(q),
        .rep = HVI_IO_REP(q),
        .count = 1,
        .insn_len = (uint32_t)hvi_hvf_vmcs(v, VMCS_RO_VMEXIT_INSTR_LEN),
    };
    if (p->size != 1 && p->size != 2 && p->size != 4)
        return hvi_error(-EIO,
                         "vCPU %u: I/O exit qualification 0x%llx has "
                         "size %u",
                         v->id, (unsigned long long)q, p->size);
    if (p->string) {
        int r = string_setup(v, p, exit);
        if (r <= 0)
            return r; /* 0: nothing to transfer, go on */
    } else if (!p->in) {
        uint64_t rax;
        int r = hvi_hvf_rreg(v, HV_X86_RAX, &rax);
        if (r < 0)
            return r;
        memcpy(v->iobuf, &rax, p->size); /* little-endian */
    }
    exit->reason = HVC_EXIT_PIO;
    exit->u.io.port = p->port;
    exit->u.io.size = p->size;
    exit->u.io.is_write = !p->in;
    exit->u.io.count = p->count;
    exit->u.io.data = v->iobuf;
    if (!p->string && !p->in) {
        /* An OUT has nothing to complete: RIP steps over it now, as KVM's
         * does before its exit, so registers read (or saved) after the
         * exit are the next instruction's on either backend. */
        v->pending = HVI_PEND_NONE;
        int r = hvi_hvf_skip(v, p->insn_len);
        return r < 0 ? r : 1;
    }
    v->pending = HVI_PEND_PIO;
    return 1;
}

static int complete_string(struct hvi_hvf_vcpu *v, struct hvi_hvf_pio *p)
{
    uint64_t bytes = (uint64_t)p->count * p->size;
    int r;
    if (p->in && (r = hvi_hvf_lin_write(v, p->lin, v->iobuf, bytes)) < 0)
        return hvi_error(-EFAULT,
                         "vCPU %u: INS to linear 0x%llx, which is not "
                         "writable RAM",
                         v->id, (unsigned long long)p->lin);
    hv_x86_reg_t ireg = p->in ? HV_X86_RDI : HV_X86_RSI;
    uint64_t idx, rcx = 0;
    if ((r = hvi_hvf_rreg(v, ireg, &idx)) < 0 ||
        (p->rep && (r = hvi_hvf_rreg(v, HV_X86_RCX, &rcx)) < 0))
        return r;
    uint64_t nidx = p->down ? idx - bytes : idx + bytes;
    if ((r = hvi_hvf_wreg(v, ireg, merge(idx, nidx, p->addr_size))) < 0)
        return r;
    bool done = true;
    if (p->rep) {
        uint64_t left = (rcx & mask_of(p->addr_size)) - p->count;
        if ((r = hvi_hvf_wreg(v, HV_X86_RCX, merge(rcx, left, p->addr_size))) <
            0)
            return r;
        done = left == 0;
    }
    return done ? hvi_hvf_skip(v, p->insn_len) : 0;
}

int hvi_hvf_complete_io(struct hvi_hvf_vcpu *v)
{
    struct hvi_hvf_pio *p = &v->pio;
    v->pending = HVI_PEND_NONE;
    if (p->string)
        return complete_string(v, p);
    if (p->in) {
        uint64_t rax;
        int r = hvi_hvf_rreg(v, HV_X86_RAX, &rax);
        if (r < 0)
            return r;
        uint64_t val = 0;
        memcpy(&val, v->iobuf, p->size);
        /* IN AL/AX keeps the rest of RAX; IN EAX clears the upper half. */
        rax = p->size == 4   ? val
              : p->size == 2 ? (rax & ~0xffffull) | val
                             : (rax & ~0xffull) | val;
        if ((r = hvi_hvf_wreg(v, HV_X86_RAX, rax)) < 0)
            return r;
    }
    return hvi_hvf_skip(v, p->insn_len);
}
