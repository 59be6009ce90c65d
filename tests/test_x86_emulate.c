/* The library's x86 MMIO emulator (src/arch/x86/emulate.h) against the
 * CPU: every case of x86emu_cases.c runs natively in a KVM guest (64-bit
 * long mode, 32-bit protected mode, real mode), with its memory operand in
 * ordinary RAM, and again in the emulator from the same registers, flags
 * and memory, over a copy of that memory. Registers, RIP's advance, the
 * flags the instruction defines and every byte of the memory window must
 * be equal. Then the error paths, the REP batch limit and callback
 * failures, without a guest. */
#include "hvtest.h"
#include "x86emu_cases.h"

#include "emulate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

TestSuite(x86_emulate, .timeout = 240);

/* hvc register ids in the encoding's order. */
static const hvc_reg gpr_ids[16] = {
    HVC_X86_RAX, HVC_X86_RCX, HVC_X86_RDX, HVC_X86_RBX,
    HVC_X86_RSP, HVC_X86_RBP, HVC_X86_RSI, HVC_X86_RDI,
    HVC_X86_R8,  HVC_X86_R9,  HVC_X86_R10, HVC_X86_R11,
    HVC_X86_R12, HVC_X86_R13, HVC_X86_R14, HVC_X86_R15};

/* The emulator's memory: a copy of the guest's window. */
struct emu_mem {
    uint8_t buf[XC_WIN_LEN];
    unsigned mmio_reads, mmio_writes, mem_reads, mem_writes;
    uint64_t bad_addr;
    int bad;
};

static uint8_t *at(struct emu_mem *m, uint64_t addr, unsigned size)
{
    if (addr < XC_WIN || addr + size > XC_WIN + XC_WIN_LEN ||
        addr + size < addr) {
        m->bad++;
        m->bad_addr = addr;
        return NULL;
    }
    return m->buf + (addr - XC_WIN);
}

static int rd(struct emu_mem *m, uint64_t addr, unsigned size, uint64_t *v)
{
    uint8_t *p = at(m, addr, size);
    if (!p)
        return -EFAULT;
    *v = 0;
    for (unsigned i = 0; i < size; i++)
        *v |= (uint64_t)p[i] << (8 * i);
    return 0;
}

static int wr(struct emu_mem *m, uint64_t addr, unsigned size, uint64_t v)
{
    uint8_t *p = at(m, addr, size);
    if (!p)
        return -EFAULT;
    for (unsigned i = 0; i < size; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return 0;
}

static int mmio_read(void *o, uint64_t a, unsigned s, uint64_t *v)
{
    ((struct emu_mem *)o)->mmio_reads++;
    return rd(o, a, s, v);
}
static int mmio_write(void *o, uint64_t a, unsigned s, uint64_t v)
{
    ((struct emu_mem *)o)->mmio_writes++;
    return wr(o, a, s, v);
}
static int mem_read(void *o, uint64_t a, unsigned s, uint64_t *v)
{
    ((struct emu_mem *)o)->mem_reads++;
    return rd(o, a, s, v);
}
static int mem_write(void *o, uint64_t a, unsigned s, uint64_t v)
{
    ((struct emu_mem *)o)->mem_writes++;
    return wr(o, a, s, v);
}

static const struct hvi_x86_mem_ops ops = {mmio_read, mmio_write, mem_read,
                                           mem_write};

struct rig {
    hvt t;
    hvc_vcpu *vcpu;
    unsigned mode;
    unsigned cases, failures, mmio_accesses, messages, failed_case;
    unsigned undef_diffs; /* cases whose undefined flags differ */
    unsigned batched;     /* cases the emulator did in several calls */
    uint64_t seg_base[6]; /* the vCPU's, in the encoding's order */
    uint8_t window[XC_WIN_LEN];
    uint8_t native[XC_WIN_LEN];
    struct emu_mem emu;
};

static void hexbytes(char *out, size_t n, const struct xcase *c)
{
    size_t o = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < c->len && o + 4 < n; i++)
        o += (size_t)snprintf(out + o, n - o, "%02x ", c->code[i]);
}

static void fail(struct rig *g, const struct xcase *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct rig *g, const struct xcase *c, const char *fmt, ...)
{
    if (g->failed_case != g->cases) {
        g->failed_case = g->cases;
        g->failures++;
    }
    if (g->messages++ >= 40)
        return;
    char hex[64], msg[256];
    hexbytes(hex, sizeof(hex), c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cr_log_error("%u-bit %s [%s]: %s", g->mode, c->name, hex, msg);
}

static void pattern(uint8_t *w, unsigned seed)
{
    uint64_t x = 0x2545f4914f6cdd1dull ^ ((uint64_t)seed << 20);
    for (unsigned i = 0; i < XC_WIN_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w[i] = (uint8_t)x;
    }
}

static void run_native(struct rig *g, const struct xcase *c, uint64_t *regs)
{
    uint8_t code[24];
    memcpy(code, c->code, c->len);
    code[c->len] = 0xe6; /* out %al, $PORT_DONE */
    code[c->len + 1] = PORT_DONE;
    HVT_OK(hvc_vm_write(g->t.vm, XC_WIN, g->window, XC_WIN_LEN));
    HVT_OK(hvc_vm_write(g->t.vm, XC_CODE, code, c->len + 2));
    hvc_reg ids[18];
    uint64_t vals[18];
    memcpy(ids, gpr_ids, sizeof(gpr_ids));
    memcpy(vals, c->gpr, sizeof(c->gpr));
    ids[16] = HVC_X86_RIP;
    vals[16] = XC_CODE;
    ids[17] = HVC_X86_RFLAGS;
    vals[17] = c->rflags;
    HVT_OK(hvc_vcpu_set_regs(g->vcpu, ids, vals, 18));
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(g->vcpu, &e));
    if (e->reason != HVC_EXIT_PIO || e->u.io.port != PORT_DONE) {
        char hex[64];
        hexbytes(hex, sizeof(hex), c);
        cr_assert_fail("%u-bit %s [%s]: the guest stopped with exit %u "
                       "(backend %llu), not at the done port",
                       g->mode, c->name, hex, e->reason,
                       (unsigned long long)e->backend_reason);
    }
    HVT_OK(hvc_vcpu_get_regs(g->vcpu, ids, regs, 18));
    HVT_OK(hvc_vm_read(g->t.vm, XC_WIN, g->native, XC_WIN_LEN));
}

static void check_case(const struct xcase *c, void *arg)
{
    struct rig *g = arg;
    uint64_t nat[18];
    pattern(g->window, g->cases);
    memcpy(g->window + (XC_TARGET - XC_WIN), c->mem, sizeof(c->mem));
    g->cases++;
    run_native(g, c, nat);

    struct hvi_x86_cpu cpu = {0};
    memcpy(cpu.gpr, c->gpr, sizeof(cpu.gpr));
    cpu.rip = XC_CODE;
    cpu.rflags = c->rflags;
    memcpy(cpu.seg_base, g->seg_base, sizeof(cpu.seg_base));
    cpu.mode = g->mode;
    cpu.fault_write = c->fault_write;
    memset(&g->emu, 0, sizeof(g->emu));
    memcpy(g->emu.buf, g->window, XC_WIN_LEN);
    struct hvi_x86_emu_result res;
    int r = hvi_x86_emulate(&cpu, c->code, c->len, &ops, &g->emu, &res);
    if (r != (int)c->len) {
        fail(g, c, "emulator returned %d (%s), expected %u", r,
             hvc_last_error(), c->len);
        return;
    }
    /* A long REP stops after a batch: the caller re-enters the guest,
     * which runs the instruction again; here, the emulator runs it. */
    unsigned batches = 1, accesses = res.accesses;
    while (r == (int)c->len && !res.complete && batches < 16) {
        r = hvi_x86_emulate(&cpu, c->code, c->len, &ops, &g->emu, &res);
        accesses += res.accesses;
        batches++;
    }
    if (batches > 1)
        g->batched++;
    if (r != (int)c->len || !res.complete || res.length != c->len)
        fail(g, c, "result %d: length %u complete %u after %u batches", r,
             res.length, res.complete, batches);
    if (g->emu.bad)
        fail(g, c, "%d accesses outside the window (0x%llx)", g->emu.bad,
             (unsigned long long)g->emu.bad_addr);
    g->mmio_accesses += g->emu.mmio_reads + g->emu.mmio_writes;
    /* MOVS: the faulting side through mmio_, the other through mem_. */
    if (strstr(c->name, "movs/") && accesses) {
        unsigned mm = c->fault_write ? g->emu.mmio_writes : g->emu.mmio_reads;
        unsigned om = c->fault_write ? g->emu.mem_reads : g->emu.mem_writes;
        if (mm * 2 != accesses || om * 2 != accesses)
            fail(g, c, "MOVS routed %u mmio, %u mem of %u accesses", mm, om,
                 accesses);
    }
    /* The guest stops at the port write after the instruction; the exit
     * reports RIP past it. */
    if (nat[16] != XC_CODE + c->len + 2)
        fail(g, c, "native RIP 0x%llx, emulated length %d",
             (unsigned long long)nat[16], r);
    for (int i = 0; i < 16; i++)
        if (nat[i] != cpu.gpr[i])
            fail(g, c, "gpr %d: native 0x%llx emulated 0x%llx (before 0x%llx)",
                 i, (unsigned long long)nat[i], (unsigned long long)cpu.gpr[i],
                 (unsigned long long)c->gpr[i]);
    uint64_t diff = (nat[17] ^ cpu.rflags) & ~c->undef;
    /* Undefined flags are the CPU's choice: counted, not compared. */
    if ((nat[17] ^ cpu.rflags) & c->undef)
        g->undef_diffs++;
    if (diff)
        fail(g, c, "rflags: native 0x%llx emulated 0x%llx (before 0x%llx)",
             (unsigned long long)nat[17], (unsigned long long)cpu.rflags,
             (unsigned long long)c->rflags);
    for (unsigned i = 0; i < XC_WIN_LEN; i++)
        if (g->native[i] != g->emu.buf[i]) {
            fail(g, c,
                 "memory 0x%x: native 0x%02x emulated 0x%02x (was 0x%02x)",
                 XC_WIN + i, g->native[i], g->emu.buf[i], g->window[i]);
            break;
        }
}

static void against_cpu(unsigned mode)
{
    static struct rig g; /* big buffers */
    memset(&g, 0, sizeof(g));
    g.mode = mode;
    g.failed_case = ~0u;
    hvt_open(&g.t, 0);
    g.vcpu = hvt_vcpu(g.t.vm, 0,
                      mode == 64   ? HVC_X86_MODE_LONG64
                      : mode == 32 ? HVC_X86_MODE_PROTECTED32
                                   : HVC_X86_MODE_REAL,
                      0);
    static const hvc_reg seg_ids[6] = {HVC_X86_ES, HVC_X86_CS, HVC_X86_SS,
                                       HVC_X86_DS, HVC_X86_FS, HVC_X86_GS};
    /* Data segments with bases of their own, so that a wrong default
     * segment (SS for [eBP], [BP]) or override shows: accesses move by
     * under 1 KiB, inside the window. 64-bit mode ignores all but FS's. */
    static const uint64_t bases[6] = {0x300, 0, 0x200, 0x100, XC_FS_BASE, 0};
    for (int i = 0; i < 6; i++) {
        hvc_x86_segment sg;
        HVT_OK(hvc_vcpu_get_segment(g.vcpu, seg_ids[i], &sg));
        if (seg_ids[i] != HVC_X86_CS && seg_ids[i] != HVC_X86_GS) {
            sg.base = bases[i];
            if (mode == 16)
                sg.selector = (uint16_t)(bases[i] >> 4);
            HVT_OK(hvc_vcpu_set_segment(g.vcpu, seg_ids[i], &sg));
        }
        g.seg_base[i] = sg.base;
    }
    unsigned n = xcase_generate(mode, check_case, &g);
    cr_log_info("%u-bit: %u cases (%u in several REP batches), %u MMIO "
                "accesses emulated, %u failed; %u with undefined flags "
                "unlike this CPU's",
                mode, n, g.batched, g.mmio_accesses, g.failures, g.undef_diffs);
    cr_assert_gt(n, 500, "only %u cases", n);
    cr_assert_eq(n, g.cases);
    cr_assert_gt(g.mmio_accesses, n, "the cases made few memory accesses");
    cr_assert_geq(g.batched, 6, "few REP instructions past one batch");
    cr_assert_eq(g.failures, 0, "%u of %u cases differ from the CPU",
                 g.failures, n);
    hvt_close(&g.t);
}

Test(x86_emulate, long_mode_against_the_cpu)
{
    against_cpu(64);
}

Test(x86_emulate, protected_mode_against_the_cpu)
{
    against_cpu(32);
}

Test(x86_emulate, real_mode_against_the_cpu)
{
    against_cpu(16);
}

/* ---- without a guest ---------------------------------------------------- */

static int emulate(unsigned mode, const uint8_t *b, size_t n,
                   struct hvi_x86_cpu *cpu, struct emu_mem *m,
                   struct hvi_x86_emu_result *res)
{
    cpu->mode = mode;
    return hvi_x86_emulate(cpu, b, n, &ops, m, res);
}

#define REFUSED(md, err, text, ...)                                            \
    do {                                                                       \
        static const uint8_t b_[] = {__VA_ARGS__};                             \
        struct hvi_x86_cpu cpu_ = {0}, before_;                                \
        static struct emu_mem m_;                                              \
        struct hvi_x86_emu_result res_;                                        \
        cpu_.gpr[HVI_X86_RBX] = XC_TARGET;                                     \
        cpu_.mode = md;                                                        \
        before_ = cpu_;                                                        \
        int r_ = emulate(md, b_, sizeof(b_), &cpu_, &m_, &res_);               \
        cr_assert_eq(r_, err, "%s: %d (%s)", #__VA_ARGS__, r_,                 \
                     hvc_last_error());                                        \
        cr_assert(strstr(hvc_last_error(), text), "message: %s",               \
                  hvc_last_error());                                           \
        cr_assert(memcmp(&cpu_, &before_, sizeof(cpu_)) == 0,                  \
                  "registers changed on failure");                             \
    } while (0)

Test(x86_emulate, refuses_with_the_bytes_named)
{
    /* truncated: ModRM missing, disp32 cut short, moffs cut short */
    REFUSED(64, -EINVAL, "\"\\x89\" (1 bytes", 0x89);
    REFUSED(64, -EINVAL, "truncated", 0x89, 0x83, 0x00, 0x10);
    REFUSED(64, -EINVAL, "truncated", 0xa1, 0x00, 0x10, 0x00, 0x00);
    REFUSED(64, -EINVAL, "truncated", 0x66, 0x48);
    /* 15 prefixes and no opcode: over the limit */
    REFUSED(64, -EINVAL, "longer than 15", 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
            0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x89, 0x03);
    /* valid but not supported: SYSCALL, MUL, a far jump, a push */
    REFUSED(64, -ENOTSUP, "\\x0f\\x05", 0x0f, 0x05);
    REFUSED(64, -ENOTSUP, "not supported", 0xf7, 0x23);
    REFUSED(64, -ENOTSUP, "not supported", 0xff, 0x33);
    REFUSED(32, -ENOTSUP, "32-bit mode", 0x63, 0x03); /* ARPL */
    /* LOCK where the CPU raises #UD */
    REFUSED(64, -EINVAL, "LOCK", 0xf0, 0x89, 0x03);
    REFUSED(64, -EINVAL, "LOCK", 0xf0, 0x01, 0xc3);
    REFUSED(64, -EINVAL, "LOCK", 0xf0, 0x39, 0x03);
    REFUSED(64, -EINVAL, "LOCK", 0xf0, 0x0f, 0xa3, 0x03);
    REFUSED(64, -EINVAL, "LOCK", 0xf0, 0xaa);
    /* C6 /1 and 0F BA /0 are no instructions */
    REFUSED(64, -EINVAL, "invalid", 0xc6, 0x0b, 0x01);
    REFUSED(64, -EINVAL, "invalid", 0x0f, 0xba, 0x03, 0x01);
    /* nothing at all, and a bad mode */
    REFUSED(64, -ENOTSUP, "\"\\x90\"", 0x90); /* NOP: no memory */
    struct hvi_x86_cpu cpu = {0};
    struct hvi_x86_emu_result res;
    static struct emu_mem m;
    static const uint8_t nop[] = {0x90};
    cr_assert_eq(emulate(64, nop, 0, &cpu, &m, &res), -EINVAL);
    cr_assert_eq(emulate(48, nop, 1, &cpu, &m, &res), -EINVAL);
}

Test(x86_emulate, rep_stops_after_a_batch)
{
    static struct emu_mem m;
    static const uint8_t rep_stosb[] = {0xf3, 0xaa};
    struct hvi_x86_cpu cpu = {0};
    struct hvi_x86_emu_result res;
    cpu.gpr[HVI_X86_RCX] = 5000;
    cpu.gpr[HVI_X86_RDI] = XC_WIN;
    cpu.gpr[HVI_X86_RAX] = 0x5a;
    cr_assert_eq(emulate(64, rep_stosb, 2, &cpu, &m, &res), 2);
    cr_assert_eq(res.complete, 0);
    cr_assert_eq(cpu.gpr[HVI_X86_RCX], 5000 - HVI_X86_REP_BATCH);
    cr_assert_eq(cpu.gpr[HVI_X86_RDI], XC_WIN + HVI_X86_REP_BATCH);
    cr_assert_eq(m.mmio_writes, HVI_X86_REP_BATCH);
    cr_assert_eq(m.buf[HVI_X86_REP_BATCH - 1], 0x5a);
    cr_assert_eq(m.buf[HVI_X86_REP_BATCH], 0);
}

Test(x86_emulate, callback_errors_come_back)
{
    static struct emu_mem m;
    struct hvi_x86_cpu cpu = {0}, before;
    struct hvi_x86_emu_result res;
    /* add %eax, (%rbx) with rbx outside the window: the read fails and
     * nothing changes */
    static const uint8_t add[] = {0x01, 0x03};
    cpu.gpr[HVI_X86_RBX] = 0x100;
    cpu.rflags = 0x2;
    cpu.mode = 64;
    before = cpu;
    cr_assert_eq(emulate(64, add, 2, &cpu, &m, &res), -EFAULT);
    cr_assert(memcmp(&cpu, &before, sizeof(cpu)) == 0);
    /* rep movsb running off the window's end after 3 bytes: the
     * registers count the 3 that were copied */
    static const uint8_t rep_movsb[] = {0xf3, 0xa4};
    memset(&m, 0, sizeof(m));
    cpu.gpr[HVI_X86_RCX] = 10;
    cpu.gpr[HVI_X86_RSI] = XC_WIN + XC_WIN_LEN - 3;
    cpu.gpr[HVI_X86_RDI] = XC_WIN;
    cr_assert_eq(emulate(64, rep_movsb, 2, &cpu, &m, &res), -EFAULT);
    cr_assert_eq(cpu.gpr[HVI_X86_RCX], 7);
    cr_assert_eq(cpu.gpr[HVI_X86_RDI], XC_WIN + 3);
}
