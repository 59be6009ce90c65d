/* tests/hvf_host: guest linear memory (through KVM_TRANSLATE and the mapped
 * ranges) and a small x86 decoder: instruction length, prefixes and the
 * memory operand's effective address. It only serves to give back what
 * KVM already decoded (instruction length, string I/O information, the
 * start of an instruction KVM has already completed); the backend's own
 * emulator does the work. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

int hvfh_translate(struct hvfh_vcpu *v, uint64_t la, uint64_t *gpa)
{
    uint64_t page = la & ~(HVFH_PAGE - 1);
    if (v->tlb_valid && v->tlb_la == page) {
        *gpa = v->tlb_gpa | (la & (HVFH_PAGE - 1));
        return 0;
    }
    if (hvfh_flush_sregs(v))
        return -EIO;
    struct kvm_translation t = {.linear_address = page};
    /* the page-table walk reads guest memory through the memslots: not
     * while mem.c replaces them (another vCPU's hv_vm_protect) */
    pthread_rwlock_rdlock(&hvfh_vm.run_lock);
    int bad = ioctl(v->fd, KVM_TRANSLATE, &t) || !t.valid;
    pthread_rwlock_unlock(&hvfh_vm.run_lock);
    if (bad)
        return -EFAULT;
    v->tlb_la = page;
    v->tlb_gpa = t.physical_address & ~(HVFH_PAGE - 1);
    v->tlb_valid = 1;
    *gpa = v->tlb_gpa | (la & (HVFH_PAGE - 1));
    return 0;
}

static void *gpa_host(uint64_t gpa, size_t n, int write)
{
    void *p = NULL;
    pthread_mutex_lock(&hvfh_vm_lock);
    for (int i = 0; i < hvfh_vm.n_ranges; i++) {
        struct hvfh_range *r = &hvfh_vm.ranges[i];
        if (gpa >= r->gpa && gpa + n <= r->gpa + r->size &&
            (r->flags & HV_MEMORY_READ) &&
            (!write || (r->flags & HV_MEMORY_WRITE)))
            p = (void *)(uintptr_t)(r->uva + (gpa - r->gpa));
    }
    pthread_mutex_unlock(&hvfh_vm_lock);
    return p;
}

static int linear_rw(struct hvfh_vcpu *v, uint64_t la, void *buf, size_t n,
                     int write)
{
    uint8_t *b = buf;
    while (n) {
        size_t chunk = HVFH_PAGE - (la & (HVFH_PAGE - 1));
        if (chunk > n)
            chunk = n;
        uint64_t gpa;
        if (hvfh_translate(v, la, &gpa))
            return -EFAULT;
        void *h = gpa_host(gpa, chunk, write);
        if (!h)
            return -EFAULT;
        if (write)
            memcpy(h, b, chunk);
        else
            memcpy(b, h, chunk);
        la += chunk;
        b += chunk;
        n -= chunk;
    }
    return 0;
}

int hvfh_read_linear(struct hvfh_vcpu *v, uint64_t la, void *buf, size_t n)
{
    return linear_rw(v, la, buf, n, 0);
}

int hvfh_write_linear(struct hvfh_vcpu *v, uint64_t la, const void *buf,
                      size_t n)
{
    return linear_rw(v, la, (void *)buf, n, 1);
}

int hvfh_code_bits(struct hvfh_vcpu *v)
{
    if (hvfh_load_sregs(v))
        return 64;
    if (!(v->sregs.cr0 & 1))
        return 16;
    if ((v->sregs.efer & (1u << 10)) && v->sregs.cs.l)
        return 64;
    return v->sregs.cs.db ? 32 : 16;
}

static uint64_t gpr_val(struct hvfh_vcpu *v, int i)
{
    const struct kvm_regs *r = &v->regs;
    const uint64_t t[16] = {r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp,
                            r->rsi, r->rdi, r->r8,  r->r9,  r->r10, r->r11,
                            r->r12, r->r13, r->r14, r->r15};
    return t[i & 15];
}

/* One-byte opcodes with a ModRM byte (bit set). */
static int modrm1(uint8_t op)
{
    if (op < 0x40)
        return (op & 7) < 4;
    switch (op) {
    case 0x62:
    case 0x63:
    case 0x69:
    case 0x6b:
    case 0xc0:
    case 0xc1:
    case 0xc4:
    case 0xc5:
    case 0xc6:
    case 0xc7:
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
    case 0xf6:
    case 0xf7:
    case 0xfe:
    case 0xff: return 1;
    }
    return (op >= 0x80 && op <= 0x8f) || (op >= 0xd8 && op <= 0xdf);
}

static int modrm0f(uint8_t op)
{
    if (op <= 0x03 || (op >= 0x10 && op <= 0x2f) || (op >= 0x38 && op <= 0x3a))
        return op != 0x38 && op != 0x3a ? 1 : 0;
    if ((op >= 0x05 && op <= 0x0f) || (op >= 0x30 && op <= 0x37) ||
        op == 0x77 || (op >= 0x80 && op <= 0x8f) || op == 0xa0 || op == 0xa1 ||
        op == 0xa2 || op == 0xa8 || op == 0xa9 || op == 0xaa ||
        (op >= 0xc8 && op <= 0xcf))
        return 0;
    return 1;
}

/* Decodes the instruction at linear CS.base + rip. end_rip, when nonzero,
 * is where it must end (for RIP-relative operands of an instruction whose
 * bytes precede it). Returns 0 or -1 (unreadable or not decodable). */
int hvfh_decode(struct hvfh_vcpu *v, uint64_t rip, struct hvfh_insn *in,
                uint64_t end_rip)
{
    uint8_t b[16];
    if (hvfh_load_sregs(v) || hvfh_load_regs(v))
        return -1;
    uint64_t la = v->sregs.cs.base + rip;
    if (hvfh_read_linear(v, la, b, 15)) {
        /* near the end of a page followed by unreadable memory */
        size_t n = HVFH_PAGE - (la & (HVFH_PAGE - 1));
        memset(b, 0, sizeof(b));
        if (n > 15 || hvfh_read_linear(v, la, b, n))
            return -1;
    }
    int bits = hvfh_code_bits(v);
    memset(in, 0, sizeof(*in));
    in->seg = -1;
    in->opsize = bits == 16 ? 2 : 4;
    in->addrsize = bits / 8;
    int i = 0;
    for (;; i++) {
        if (i >= 14)
            return -1;
        uint8_t p = b[i];
        if (p == 0x66)
            in->opsize = bits == 16 ? 4 : 2;
        else if (p == 0x67)
            in->addrsize = bits == 64 ? 4 : bits == 32 ? 2 : 4;
        else if (p == 0xf2 || p == 0xf3)
            in->rep = p;
        else if (p == 0x26 || p == 0x2e || p == 0x36 || p == 0x3e)
            in->seg = (p >> 3) & 3; /* ES CS SS DS = 0..3 */
        else if (p == 0x64 || p == 0x65)
            in->seg = p - 0x60; /* FS 4, GS 5 */
        else if (p == 0xf0)
            ;
        else
            break;
    }
    if (bits == 64 && (b[i] & 0xf0) == 0x40) {
        in->rex = b[i++];
        if (in->rex & 8)
            in->opsize = 8;
    }
    uint8_t op = b[i++];
    int imm = 0;
    if (op == 0x0f) {
        op = b[i++];
        in->map = 1;
        if (op == 0x38 || op == 0x3a) {
            in->map = op == 0x38 ? 2 : 3;
            op = b[i++];
            in->has_modrm = 1;
            imm = in->map == 3 ? 1 : 0;
        } else {
            in->has_modrm = modrm0f(op);
            if ((op >= 0x70 && op <= 0x73) || op == 0xa4 || op == 0xac ||
                op == 0xba || op == 0xc2 || (op >= 0xc4 && op <= 0xc6))
                imm = 1;
            if (op >= 0x80 && op <= 0x8f)
                imm = 4;
        }
    } else {
        in->has_modrm = modrm1(op);
        int z = in->opsize == 2 ? 2 : 4;
        if (op < 0x40 && (op & 7) == 4)
            imm = 1;
        else if (op < 0x40 && (op & 7) == 5)
            imm = z;
        else if (op == 0x68 || op == 0x69 || op == 0x81 || op == 0xa9 ||
                 op == 0xc7 || op == 0xe8 || op == 0xe9)
            imm = z;
        else if (op == 0x6a || op == 0x6b || (op >= 0x70 && op <= 0x7f) ||
                 op == 0x80 || op == 0x82 || op == 0x83 || op == 0xa8 ||
                 (op >= 0xb0 && op <= 0xb7) || op == 0xc0 || op == 0xc1 ||
                 op == 0xc6 || op == 0xcd || op == 0xd4 || op == 0xd5 ||
                 (op >= 0xe0 && op <= 0xe7) || op == 0xeb)
            imm = 1;
        else if (op >= 0xb8 && op <= 0xbf)
            imm = in->opsize == 8 ? 8 : z;
        else if (op == 0xc2 || op == 0xca)
            imm = 2;
        else if (op == 0xc8)
            imm = 3;
        else if (op >= 0xa0 && op <= 0xa3)
            imm = in->addrsize;
    }
    in->op = op;
    uint64_t ea = 0;
    int riprel = 0;
    if (in->has_modrm) {
        uint8_t m = b[i++];
        in->modrm = m;
        int mod = m >> 6, rm = m & 7;
        if (in->map == 0 && (op == 0xf6 || op == 0xf7) && ((m >> 3) & 7) < 2)
            imm = op == 0xf6 ? 1 : (in->opsize == 2 ? 2 : 4);
        if (mod != 3) {
            in->mem = 1;
            if (in->addrsize == 2)
                return -1; /* 16-bit addressing: not needed here */
            int disp = mod == 1 ? 1 : mod == 2 ? 4 : 0;
            if (rm == 4) {
                uint8_t sib = b[i++];
                int base = (sib & 7) | ((in->rex & 1) << 3);
                int index = ((sib >> 3) & 7) | ((in->rex & 2) << 2);
                if (index != 4)
                    ea += gpr_val(v, index) << (sib >> 6);
                if ((sib & 7) == 5 && mod == 0)
                    disp = 4;
                else
                    ea += gpr_val(v, base);
            } else if (rm == 5 && mod == 0) {
                disp = 4;
                riprel = bits == 64;
            } else {
                ea += gpr_val(v, rm | ((in->rex & 1) << 3));
            }
            int64_t d = 0;
            if (disp == 1)
                d = (int8_t)b[i];
            else if (disp == 4)
                d = (int32_t)((uint32_t)b[i] | (uint32_t)b[i + 1] << 8 |
                              (uint32_t)b[i + 2] << 16 |
                              (uint32_t)b[i + 3] << 24);
            i += disp;
            ea += (uint64_t)d;
        }
    }
    in->imm_len = imm;
    for (int k = 0; k < imm && k < 8; k++)
        in->imm |= (uint64_t)b[i + k] << (8 * k);
    i += imm;
    if (i > 15)
        return -1;
    in->len = i;
    if (riprel)
        ea += end_rip ? end_rip : rip + (uint64_t)i;
    if (in->addrsize == 4)
        ea &= 0xffffffffu;
    in->ea = ea;
    return 0;
}

/* Whether @p in, decoded backwards from where KVM left RIP after an MMIO
 * write, would have written @p data (@p len bytes): for the stores whose
 * value is a register KVM left as it was or an immediate (MOV r/m from a
 * register or immediate, MOV moffs from AL/eAX, STOS), the value must be
 * the data; others are not judged (1). Bytes before an instruction can
 * decode as one that ends at the same place and writes the same address
 * with another register: "44 89 41 20" (mov [rcx+0x20], r8d) read from
 * its second byte is "mov [rcx+0x20], eax". */
int hvfh_store_agrees(struct hvfh_vcpu *v, const struct hvfh_insn *in,
                      const void *data, uint32_t len)
{
    if (in->map || len == 0 || len > 8)
        return 1;
    uint64_t val;
    uint8_t op = in->op;
    if (op == 0x88 || op == 0x89) {
        int reg = ((in->modrm >> 3) & 7) | ((in->rex & 4) << 1);
        if (op == 0x88 && !in->rex && reg >= 4 && reg < 8)
            val = gpr_val(v, reg - 4) >> 8; /* AH, CH, DH, BH */
        else
            val = gpr_val(v, reg);
    } else if ((op == 0xc6 || op == 0xc7) && ((in->modrm >> 3) & 7) == 0) {
        val = in->imm;
        if (op == 0xc7 && in->opsize == 8)
            val = (uint64_t)(int64_t)(int32_t)val;
    } else if (op == 0xa2 || op == 0xa3 || op == 0xaa || op == 0xab) {
        val = gpr_val(v, 0);
    } else {
        return 1;
    }
    uint64_t got = 0;
    memcpy(&got, data, len);
    uint64_t m = len == 8 ? UINT64_MAX : (1ull << (8 * len)) - 1;
    return (val & m) == got;
}
