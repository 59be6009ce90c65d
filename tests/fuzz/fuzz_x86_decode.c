/* libFuzzer target: the library's x86 MMIO decoder and emulator
 * (src/arch/x86/emulate.h) on arbitrary bytes and register state. No VM:
 * the emulator is backend-neutral and its memory is the callbacks'.
 *
 * Input: byte 0 picks the state (bits 0-1: 64-, 32-, 16-bit or 64-bit
 * mode; bit 2: the fault was a write; bit 3: DF set; bit 4: small
 * registers, so that string instructions and addresses stay near 0;
 * bit 5: callbacks fail at addresses whose bits 8-11 are all set); bytes
 * 1-8 seed the registers; the rest are the instruction's bytes (any
 * length: the emulator looks at 15 at most). Seeds: fuzz_seeds.c.
 *
 * Checks besides the sanitizers: a success consumes 1..15 bytes, no more
 * than were given, and says so in its result, with as many accesses as
 * callbacks were made (at most two per REP iteration); an error leaves
 * a message and, unless a REP string instruction made progress, the
 * registers unchanged; a second run from the same state gives the same result,
 * registers and memory. */
#include "fuzz_common.h"

#include "../../src/arch/x86/emulate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MEM_LEN 4096u

struct mem {
    uint8_t buf[MEM_LEN];
    bool failing;
    unsigned calls;
};

/* Any address lands in the buffer: the callbacks are bounded, the
 * emulator is not trusted to pass sane addresses. */
static uint8_t *at(struct mem *m, uint64_t addr, unsigned size)
{
    if (size != 1 && size != 2 && size != 4 && size != 8)
        fz_fail("callback with size %u", size);
    m->calls++;
    if (m->failing && ((addr >> 8) & 0xf) == 0xf)
        return NULL;
    return m->buf + (addr % (MEM_LEN - 8));
}

static int rd(void *o, uint64_t addr, unsigned size, uint64_t *v)
{
    uint8_t *p = at(o, addr, size);
    if (!p)
        return -EIO;
    *v = 0;
    memcpy(v, p, size); /* little-endian host */
    return 0;
}

static int wr(void *o, uint64_t addr, unsigned size, uint64_t v)
{
    uint8_t *p = at(o, addr, size);
    if (!p)
        return -EIO;
    if (size < 8 && (v >> (8 * size)))
        fz_fail("write of %u bytes with value 0x%llx", size,
                (unsigned long long)v);
    memcpy(p, &v, size);
    return 0;
}

static const struct hvi_x86_mem_ops ops = {rd, wr, rd, wr};

static struct mem mem_a, mem_b;

static void init_state(const uint8_t *h, struct hvi_x86_cpu *c, struct mem *m)
{
    static const unsigned modes[4] = {64, 32, 16, 64};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 1; i <= 8; i++)
        x ^= (uint64_t)h[i] << (8 * (i - 1));
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 16; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c->gpr[i] = (h[0] & 0x10) ? x & 0xfff : x;
    }
    c->rip = x & ~0xfffull;
    c->rflags = 0x2 | (x & 0x8d5) | ((h[0] & 8) ? 0x400 : 0);
    for (int i = 0; i < 6; i++)
        c->seg_base[i] = (h[0] & 0x10) ? 0 : (uint64_t)i << 32;
    c->mode = modes[h[0] & 3];
    c->fault_write = (h[0] >> 2) & 1;
    memset(m->buf, 0xa5, sizeof(m->buf));
    m->failing = h[0] & 0x20;
    m->calls = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    size_t len = size - 9;
    /* Exactly len bytes, so ASan sees a read past the end. */
    uint8_t *insn = malloc(len ? len : 1);
    if (!insn)
        return 0;
    memcpy(insn, data + 9, len);

    struct hvi_x86_cpu a, b, before;
    struct hvi_x86_emu_result ra, rb;
    init_state(data, &a, &mem_a);
    before = a;
    int r = hvi_x86_emulate(&a, insn, len, &ops, &mem_a, &ra);
    if (r > 0) {
        if (r > HVI_X86_MAX_INSN || (size_t)r > len)
            fz_fail("length %d from %zu bytes", r, len);
        if (ra.length != (unsigned)r || ra.complete > 1)
            fz_fail("result length %u complete %u for %d", ra.length,
                    ra.complete, r);
        if (a.rip != before.rip || a.mode != before.mode)
            fz_fail("RIP or mode changed");
        if (ra.accesses != mem_a.calls || ra.accesses > 2 * HVI_X86_REP_BATCH)
            fz_fail("%u accesses reported, %u callbacks made", ra.accesses,
                    mem_a.calls);
    } else {
        if (r == 0)
            fz_fail("0 returned");
        if ((r == -EINVAL || r == -ENOTSUP) && !hvc_last_error()[0])
            fz_fail("error %d without a message", r);
        /* Only a REP string instruction that made progress keeps its
         * register changes. */
        bool rep = false;
        for (size_t i = 0; i < len && i < HVI_X86_MAX_INSN; i++)
            rep |= insn[i] == 0xf3 || insn[i] == 0xf2;
        if (!rep && memcmp(&a, &before, sizeof(a)) != 0)
            fz_fail("registers changed by a failed instruction (%d)", r);
    }

    init_state(data, &b, &mem_b);
    int r2 = hvi_x86_emulate(&b, insn, len, &ops, &mem_b, &rb);
    if (r2 != r || memcmp(&a, &b, sizeof(a)) != 0 ||
        memcmp(mem_a.buf, mem_b.buf, MEM_LEN) != 0 ||
        mem_a.calls != mem_b.calls ||
        (r > 0 && memcmp(&ra, &rb, sizeof(ra)) != 0))
        fz_fail("a second run differs: %d then %d", r, r2);
    free(insn);
    return 0;
}
