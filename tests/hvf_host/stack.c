/* tests/hvf_host: a write that KVM completed on a write-protected stack
 * page (hv_vm_protect without HV_MEMORY_WRITE is a read-only KVM memslot,
 * where KVM emulates the store before it exits), put back so that the
 * backend sees an EPT violation before the instruction, as the framework
 * reports it. run.c's exit_mmio() asks here when the store is no memory
 * operand it found. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <string.h>

/* A write to the new top of the stack that KVM has completed (a page the
 * VMM write-protected, hv_vm_protect): CALL (RIP at the target; the data
 * written is the return address, so the CALL ends there) or PUSH (ending
 * at RIP). Puts back RIP and RSP as they were before it. */
int hvfh_stack_write_start(struct hvfh_vcpu *v, uint64_t gpa, uint32_t len,
                           struct kvm_regs *pre, struct hvfh_insn *out)
{
    int bits = hvfh_code_bits(v);
    uint64_t m = bits == 64       ? ~0ull
                 : v->sregs.ss.db ? 0xffffffffull
                                  : 0xffffull;
    /* SS's base counts outside 64-bit mode */
    uint64_t ss_base = bits == 64 ? 0 : v->sregs.ss.base, g;
    if ((len != 2 && len != 4 && len != 8) ||
        hvfh_translate(v, ss_base + (v->regs.rsp & m), &g) || g != gpa)
        return -1;
    struct hvfh_insn in;
    uint64_t ret = 0;
    memcpy(&ret, v->run->mmio.data, len);
    for (int k = 1; k <= 15; k++) { /* CALL rel, CALL r/m */
        uint64_t start =
            (ret - (uint64_t)k) & (bits == 64 ? ~0ull : 0xffffffffull);
        if (hvfh_decode(v, start, &in, ret) || in.len != k || in.map ||
            !(in.op == 0xe8 || (in.op == 0xff && ((in.modrm >> 3) & 7) == 2)))
            continue;
        pre->rip = start;
        pre->rsp = (v->regs.rsp & ~m) | ((v->regs.rsp + len) & m);
        *out = in;
        return 0;
    }
    for (int k = 1; k <= 15; k++) { /* PUSH r, imm, r/m, PUSHF */
        uint64_t start = v->regs.rip - (uint64_t)k;
        if (hvfh_decode(v, start, &in, v->regs.rip) || in.len != k || in.map)
            continue;
        if (!((in.op >= 0x50 && in.op <= 0x57) || in.op == 0x68 ||
              in.op == 0x6a || in.op == 0x9c ||
              (in.op == 0xff && ((in.modrm >> 3) & 7) == 6)))
            continue;
        pre->rip = start;
        pre->rsp = (v->regs.rsp & ~m) | ((v->regs.rsp + len) & m);
        *out = in;
        return 0;
    }
    return -1;
}
