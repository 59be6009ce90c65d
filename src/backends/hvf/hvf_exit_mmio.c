/* EPT violations: MMIO reaches the backend with the instruction not
 * executed, so the library's x86 emulator (src/arch/x86/emulate.h) does it.
 *
 * The device is the core's business and is served between two entries, so
 * the emulation is replayed: the instruction runs from its start with the
 * accesses served so far taken from a log, and the first access not in the
 * log stops it (nothing changed) and becomes the MMIO exit. On the next
 * entry the data joins the log and the instruction runs again; a
 * read-modify-write thus makes two exits, read then write, and finishes on
 * the third entry without entering the guest in between. A REP string
 * instruction stopped after some iterations keeps the registers the
 * emulator counted them with, and its log starts again. Accesses that land
 * in RAM (the other side of MOVS, or a page-crossing operand) are done
 * directly. */
#include "hvf.h"

#include "../../arch/x86/emulate.h"
#include "hvf_vmx.h"

#include <errno.h>
#include <string.h>

#define STOP (-EINPROGRESS) /* a callback's "needs the device now" */

static const hv_x86_reg_t gpr_reg[16] = {
    HV_X86_RAX, HV_X86_RCX, HV_X86_RDX, HV_X86_RBX, HV_X86_RSP, HV_X86_RBP,
    HV_X86_RSI, HV_X86_RDI, HV_X86_R8,  HV_X86_R9,  HV_X86_R10, HV_X86_R11,
    HV_X86_R12, HV_X86_R13, HV_X86_R14, HV_X86_R15};

static const uint32_t base_field[6] = {VMCS_GUEST_ES_BASE, VMCS_GUEST_CS_BASE,
                                       VMCS_GUEST_SS_BASE, VMCS_GUEST_DS_BASE,
                                       VMCS_GUEST_FS_BASE, VMCS_GUEST_GS_BASE};

static int load_cpu(struct hvi_hvf_vcpu *v, struct hvi_x86_cpu *c)
{
    memset(c, 0, sizeof(*c));
    int r;
    for (int i = 0; i < 16; i++)
        if ((r = hvi_hvf_rreg(v, gpr_reg[i], &c->gpr[i])) < 0)
            return r;
    if ((r = hvi_hvf_rreg(v, HV_X86_RIP, &c->rip)) < 0 ||
        (r = hvi_hvf_rreg(v, HV_X86_RFLAGS, &c->rflags)) < 0)
        return r;
    for (int s = 0; s < 6; s++)
        c->seg_base[s] = hvi_hvf_vmcs(v, base_field[s]);
    uint64_t ar = hvi_hvf_vmcs(v, VMCS_GUEST_CS_AR);
    bool lma = hvi_hvf_vmcs(v, VMCS_GUEST_IA32_EFER) & HVI_EFER_LMA;
    c->mode = lma && (ar & (1u << 13)) ? 64 : (ar & (1u << 14)) ? 32 : 16;
    c->fault_write = v->mmio.fault_write;
    return 0;
}

static int store_cpu(struct hvi_hvf_vcpu *v, const struct hvi_x86_cpu *old,
                     const struct hvi_x86_cpu *c)
{
    int r;
    for (int i = 0; i < 16; i++)
        if (c->gpr[i] != old->gpr[i] &&
            (r = hvi_hvf_wreg(v, gpr_reg[i], c->gpr[i])) < 0)
            return r;
    if (c->rflags != old->rflags &&
        (r = hvi_hvf_wreg(v, HV_X86_RFLAGS, c->rflags)) < 0)
        return r;
    return 0;
}

/* The instruction's bytes at CS:RIP: as many as are mapped, up to 15. */
static size_t fetch(struct hvi_hvf_vcpu *v, const struct hvi_x86_cpu *c,
                    uint8_t *insn)
{
    uint64_t lin = c->seg_base[HVI_X86_CS] * (c->mode != 64) + c->rip;
    if (c->mode != 64)
        lin &= 0xffffffffu;
    size_t first = 4096 - (lin & 4095);
    if (first > HVI_X86_MAX_INSN)
        first = HVI_X86_MAX_INSN;
    if (hvi_hvf_lin_read(v, lin, insn, first) < 0)
        return 0;
    if (first < HVI_X86_MAX_INSN &&
        hvi_hvf_lin_read(v, lin + first, insn + first,
                         HVI_X86_MAX_INSN - first) == 0)
        return HVI_X86_MAX_INSN;
    return first;
}

struct ctx {
    struct hvi_hvf_vcpu *v;
};

static int access(void *opaque, uint64_t lin, unsigned size, uint64_t *val,
                  bool write)
{
    struct hvi_hvf_vcpu *v = ((struct ctx *)opaque)->v;
    struct hvi_hvf_mmio_log *log = &v->mmio;
    uint64_t gpa;
    int r = hvi_hvf_translate(v, lin, &gpa);
    if (r < 0)
        return hvi_error(-EFAULT,
                         "vCPU %u: emulated access to linear 0x%llx, which "
                         "the guest's page tables do not map",
                         v->id, (unsigned long long)lin);
    if (hvi_hvf_gpa_is_ram(v->vm, gpa, size, write)) {
        if (write)
            return hvi_hvf_gpa_write(v->vm, gpa, val, size);
        *val = 0;
        return hvi_hvf_gpa_read(v->vm, gpa, val, size);
    }
    if (log->next < log->n) { /* served on an earlier pass */
        if (!write)
            *val = log->val[log->next];
        log->next++;
        return 0;
    }
    if (log->n == HVI_HVF_MMIO_LOG)
        return hvi_error(-ENOTSUP,
                         "vCPU %u: an instruction makes more than %d MMIO "
                         "accesses",
                         v->id, HVI_HVF_MMIO_LOG);
    log->addr = gpa;
    log->size = size;
    log->is_write = write;
    log->data = write ? *val : 0;
    return STOP;
}

static int mmio_read(void *o, uint64_t a, unsigned s, uint64_t *val)
{
    return access(o, a, s, val, false);
}

static int mmio_write(void *o, uint64_t a, unsigned s, uint64_t val)
{
    return access(o, a, s, &val, true);
}

static const struct hvi_x86_mem_ops ops = {
    .mmio_read = mmio_read,
    .mmio_write = mmio_write,
    .mem_read = mmio_read,
    .mem_write = mmio_write,
};

static void internal(hvc_exit *exit, int err, const uint8_t *insn, size_t n)
{
    memset(&exit->u, 0, sizeof(exit->u));
    exit->reason = HVC_EXIT_INTERNAL_ERROR;
    exit->u.internal.code = (uint32_t)-err;
    exit->u.internal.ndata = 2;
    memcpy(exit->u.internal.data, insn, n < 16 ? n : 16);
}

/* Runs the instruction at RIP with the log. @p exit NULL: a flush, which
 * may not produce a new access (nothing is committed then). Returns 0 when
 * done, 1 with an MMIO exit in @p exit, or a negative errno. */
static int emulate(struct hvi_hvf_vcpu *v, hvc_exit *exit)
{
    struct hvi_x86_cpu c, old;
    int r = load_cpu(v, &c);
    if (r < 0)
        return r;
    old = c;
    uint8_t insn[HVI_X86_MAX_INSN] = {0};
    size_t n = fetch(v, &c, insn);
    struct ctx ctx = {v};
    struct hvi_x86_emu_result res;
    v->mmio.next = 0;
    r = n ? hvi_x86_emulate(&c, insn, n, &ops, &ctx, &res) : -EFAULT;
    if (r >= 0) {
        v->pending = HVI_PEND_NONE;
        if ((r = store_cpu(v, &old, &c)) < 0)
            return r;
        return res.complete ? hvi_hvf_skip(v, res.length) : 0;
    }
    if (r != STOP) {
        v->pending = HVI_PEND_NONE;
        if (!exit)
            return r;
        internal(exit, r, insn, n);
        return 1;
    }
    if (!exit) /* flush: the caller puts the log back */
        return -EAGAIN;
    if (memcmp(&c.gpr, &old.gpr, sizeof(c.gpr)) != 0) {
        /* A REP instruction made progress before this access. */
        if ((r = store_cpu(v, &old, &c)) < 0)
            return r;
        v->mmio.n = 0;
    }
    memset(&exit->u, 0, sizeof(exit->u));
    exit->reason = HVC_EXIT_MMIO;
    exit->u.mmio.addr = v->mmio.addr;
    exit->u.mmio.size = v->mmio.size;
    exit->u.mmio.is_write = v->mmio.is_write;
    exit->u.mmio.data = &v->mmio.data;
    v->pending = HVI_PEND_MMIO;
    return 1;
}

int hvi_hvf_exit_ept(struct hvi_hvf_vcpu *v, hvc_exit *exit)
{
    uint64_t q = hvi_hvf_vmcs(v, VMCS_RO_EXIT_QUALIFIC);
    uint64_t gpa = hvi_hvf_vmcs(v, VMCS_GUEST_PHYSICAL_ADDRESS);
    bool write = q & 2;
    if (q & 4) { /* instruction fetch from MMIO: nothing to emulate */
        memset(&exit->u, 0, sizeof(exit->u));
        exit->reason = HVC_EXIT_INTERNAL_ERROR;
        exit->u.internal.code = 0x48;
        exit->u.internal.ndata = 2;
        exit->u.internal.data[0] = gpa;
        exit->u.internal.data[1] = q;
        return 1;
    }
    if (write) { /* a tracked page's first write: done by the guest */
        int r = hvi_hvf_dirty_fault(v->vm, gpa);
        if (r != 0)
            return r < 0 ? r : 0;
    }
    v->mmio = (struct hvi_hvf_mmio_log){.fault_write = write};
    return emulate(v, exit);
}

int hvi_hvf_complete_mmio(struct hvi_hvf_vcpu *v, hvc_exit *exit)
{
    struct hvi_hvf_mmio_log *log = &v->mmio;
    uint64_t val = 0;
    if (!log->is_write)
        memcpy(&val, &log->data, log->size);
    struct hvi_hvf_mmio_log before = *log;
    log->val[log->n++] = val;
    int r = emulate(v, exit);
    if (r == -EAGAIN && !exit) { /* a flush cannot serve another access */
        *log = before;
        v->pending = HVI_PEND_MMIO;
    }
    return r;
}
