/* tests/hvf_host: finding the instruction of a write KVM has already
 * executed (an MMIO write, or a write to a page the framework would fault
 * on), searching backwards from where KVM left RIP, so that run.c can put
 * the registers back to where VMX exits: before the instruction. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <string.h>

uint64_t hvfh_seg_base(struct hvfh_vcpu *v, int seg)
{
    struct kvm_segment *t[6] = {&v->sregs.es, &v->sregs.cs, &v->sregs.ss,
                                &v->sregs.ds, &v->sregs.fs, &v->sregs.gs};
    if (hvfh_code_bits(v) == 64 && seg < 4)
        return 0;
    return t[seg]->base;
}

uint64_t hvfh_amask(int addrsize)
{
    return addrsize == 8 ? ~0ull : addrsize == 4 ? 0xffffffffull : 0xffffull;
}

/* The size of the memory operand of a one-byte-map instruction that
 * writes memory; 0 when not known here. */
static int store_size(const struct hvfh_insn *in)
{
    if (in->map)
        return 0;
    uint8_t op = in->op;
    int byte = !(op & 1);
    if (op == 0x83)
        return in->opsize;
    if ((op < 0x40 && (op & 7) < 2) || op == 0x88 || op == 0x89 || op == 0xc6 ||
        op == 0xc7 || op == 0x80 || op == 0x81 || op == 0x86 || op == 0x87 ||
        op == 0xa2 || op == 0xa3 || op == 0xa4 || op == 0xa5 || op == 0xaa ||
        op == 0xab || op == 0xf6 || op == 0xf7 || op == 0xfe || op == 0xff ||
        op == 0xc0 || op == 0xc1 || (op >= 0xd0 && op <= 0xd3))
        return byte ? 1 : in->opsize;
    return 0;
}

/* A write to MMIO: KVM has executed the instruction. Find where it started:
 * REP STOS/MOVS (RIP still at it, one element done), else the instruction
 * ending at RIP whose memory operand is the written address, else a stack
 * write (stack_write_start()). */
/* A write to a page without write permission (a dirty-logged page, as
 * the framework would fault on) that no instruction ending at RIP made
 * through a memory operand: the stack write of a PUSH, CALL or the like
 * (checked exactly: a CALL landing on a PUSH is not taken for the PUSH).
 * Returns as hvfh_mmio_write_start(). */
static int stack_write_start(struct hvfh_vcpu *v, uint64_t gpa, uint32_t len,
                             struct kvm_regs *pre, struct hvfh_insn *out)
{
    struct hvfh_insn in;
    /* KVM's emulator did the stack write's instruction, RSP down and RIP
     * past it (a PUSH), or at the target (a CALL: the write's data is the
     * return address, where the CALL ends), before the write's exit:
     * undone. */
    if (len == 8 && hvfh_code_bits(v) == 64) {
        uint64_t ret, g;
        memcpy(&ret, v->run->mmio.data, 8);
        if (!hvfh_translate(v, hvfh_seg_base(v, 2) + v->regs.rsp, &g) &&
            g == gpa)
            for (int k = 2; k <= 7; k++)
                if (!hvfh_decode(v, ret - (uint64_t)k, &in, ret) &&
                    in.len == k && !in.map &&
                    (in.op == 0xe8 ||
                     (in.op == 0xff && ((in.modrm >> 3) & 7) == 2))) {
                    pre->rip = ret - (uint64_t)k;
                    pre->rsp = v->regs.rsp + 8;
                    *out = in;
                    return 0;
                }
    }
    uint64_t sg;
    if (!hvfh_translate(v, hvfh_seg_base(v, 2) + v->regs.rsp, &sg) &&
        sg == gpa) {
        for (int k = 1; k <= 5; k++)
            if (!hvfh_decode(v, v->regs.rip - (uint64_t)k, &in, v->regs.rip) &&
                in.len == k && !in.map &&
                ((in.op >= 0x50 && in.op <= 0x57) || in.op == 0x68 ||
                 in.op == 0x6a || in.op == 0x9c)) {
                pre->rip = v->regs.rip - (uint64_t)k;
                pre->rsp = v->regs.rsp + len;
                *out = in;
                return 0;
            }
    }
    /* Or it stopped before the instruction (RIP and RSP unchanged, as the
     * framework's EPT violation does): nothing to undo. */
    uint64_t g;
    if (!hvfh_decode(v, v->regs.rip, &in, 0) && !in.map &&
        ((in.op >= 0x50 && in.op <= 0x57) || in.op == 0x68 || in.op == 0x6a ||
         in.op == 0x9c || in.op == 0xe8 || in.op == 0xc8 ||
         (in.op == 0xff && in.has_modrm &&
          (((in.modrm >> 3) & 7) == 2 || ((in.modrm >> 3) & 7) == 6))) &&
        !hvfh_translate(v, hvfh_seg_base(v, 2) + v->regs.rsp - len, &g) &&
        g == gpa) {
        *out = in;
        return 0;
    }
    return -1;
}

int hvfh_mmio_write_start(struct hvfh_vcpu *v, uint64_t gpa, uint32_t len,
                          struct kvm_regs *pre, struct hvfh_insn *out)
{
    struct hvfh_insn in;
    int step = (v->regs.rflags & (1u << 10)) ? -1 : 1;
    if (!hvfh_decode(v, v->regs.rip, &in, 0) && in.rep && !in.map &&
        (in.op == 0xaa || in.op == 0xab || in.op == 0xa4 || in.op == 0xa5)) {
        int sz = (in.op & 1) ? in.opsize : 1;
        uint64_t m = hvfh_amask(in.addrsize);
        uint64_t rdi = v->regs.rdi - (uint64_t)(step * sz), g;
        if (!hvfh_translate(v, hvfh_seg_base(v, 0) + (rdi & m), &g) &&
            g == gpa) {
            pre->rdi = (v->regs.rdi & ~m) | (rdi & m);
            pre->rcx = (v->regs.rcx & ~m) | ((v->regs.rcx + 1) & m);
            if (in.op == 0xa4 || in.op == 0xa5)
                pre->rsi = (v->regs.rsi & ~m) |
                           ((v->regs.rsi - (uint64_t)(step * sz)) & m);
            *out = in;
            return 0;
        }
    }
    for (int k = 1; k <= 15; k++) {
        uint64_t start = v->regs.rip - (uint64_t)k, la, g;
        if (hvfh_decode(v, start, &in, v->regs.rip) || in.len != k)
            continue;
        /* the size KVM wrote tells REX.W/66 prefixes from the previous
         * instruction's last bytes (KVM splits writes above 8 bytes) */
        int osz = store_size(&in);
        if (osz && len <= 8 && (uint32_t)osz != len)
            continue;
        if (!hvfh_store_agrees(v, &in, v->run->mmio.data, len))
            continue;
        if (!in.map && !in.rep &&
            (in.op == 0xaa || in.op == 0xab || in.op == 0xa4 ||
             in.op == 0xa5)) {
            int sz = (in.op & 1) ? in.opsize : 1;
            uint64_t m = hvfh_amask(in.addrsize);
            uint64_t rdi = v->regs.rdi - (uint64_t)(step * sz);
            la = hvfh_seg_base(v, 0) + (rdi & m);
            if (hvfh_translate(v, la, &g) || g != gpa)
                continue;
            pre->rdi = (v->regs.rdi & ~m) | (rdi & m);
            if (in.op == 0xa4 || in.op == 0xa5)
                pre->rsi = (v->regs.rsi & ~m) |
                           ((v->regs.rsi - (uint64_t)(step * sz)) & m);
        } else if (!in.map && (in.op == 0xa2 || in.op == 0xa3)) {
            la = hvfh_seg_base(v, in.seg < 0 ? 3 : in.seg) + in.imm;
            if (hvfh_translate(v, la, &g) || g != gpa)
                continue;
        } else {
            if (!in.mem)
                continue;
            la = hvfh_seg_base(v, in.seg < 0 ? 3 : in.seg) + in.ea;
            if (hvfh_translate(v, la, &g) || g != gpa)
                continue;
        }
        pre->rip = start;
        *out = in;
        return 0;
    }
    return stack_write_start(v, gpa, len, pre, out);
}
