/* libFuzzer target for the migration stream reader (docs/MIGRATION.md):
 * every input is handed to hvc_vm_restore() through an hvc_stream that reads
 * it from memory. Built only with clang and -DHVCORE_FUZZ=ON; dev.sh runs
 * it for a bounded time over the seeds of tests/fuzz/make_seeds.c.
 *
 * Two things make mutated streams reach past the framing:
 *  - CRCs. The reader checks a CRC32C before it looks at anything, so a
 *    mutated byte almost always ends at a CRC mismatch. For about half of
 *    the inputs (chosen by a hash of the input, so a saved input always
 *    replays the same way) the harness first recomputes the header CRC,
 *    every section CRC and the page-data CRC of plain MEMORY runs; the
 *    other half go in as they are, so the mismatch paths stay covered.
 *  - Keys. When the header says the stream is encrypted with a key, the
 *    restore gets the fixed test key (bytes i * 7 + 1, as in
 *    tests/test_migration.c and tests/fuzz/make_seeds.c). Passphrase
 *    streams get no passphrase: PBKDF2 (600000 iterations) per input would
 *    make the fuzzer crawl.
 *
 * The restore's setup callback attaches a 16550 named "com1" (no output),
 * as the test VMs have, so that their streams restore to the end. A
 * restored VM is destroyed at once. The hypervisor is opened on the first
 * input and kept; every input creates at most one VM.
 *
 * FUZZ_STREAM_DUMP=<path> writes the bytes actually handed to the reader
 * (after any CRC fix-up) to <path>, to turn a finding into a test. */
#include <hvcore.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_SIZE 80
#define SEC_HEADER 24
#define MEM_DESC 24
#define SEC_MEMORY 2
#define SEC_ENCRYPTED 2u
#define HDR_ENCRYPTED 1u
#define HDR_PASSPHRASE 2u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc_table[256];

/* CRC32C (Castagnoli, reflected), the stream's checksum. */
static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    if (!crc_table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            crc_table[i] = c;
        }
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes every CRC of the stream in @p s that lies wholly or partly in
 * the buffer (a truncated payload gets the CRC of what is there). */
static void fix_crcs(uint8_t *s, size_t size)
{
    if (size < HEADER_SIZE)
        return;
    put32(s + 76, crc32c(0, s, 76));
    size_t off = HEADER_SIZE;
    while (size - off >= SEC_HEADER) {
        uint8_t *h = s + off;
        uint64_t len = get_le(h + 8, 8);
        size_t have = size - off - SEC_HEADER;
        size_t n = len < have ? (size_t)len : have;
        uint8_t *p = h + SEC_HEADER;
        bool sealed = get_le(h + 2, 2) & SEC_ENCRYPTED;
        if (get_le(h, 2) == SEC_MEMORY && !sealed && n >= MEM_DESC) {
            /* Plain runs: the section CRC covers the descriptor, whose
             * last word is the CRC of the page data after it. */
            put32(p + 20, crc32c(0, p + MEM_DESC, n - MEM_DESC));
            n = MEM_DESC;
        }
        put32(h + 20, crc32c(crc32c(0, h, 20), p, n));
        if (len >= have)
            break;
        off += SEC_HEADER + (size_t)len;
    }
}

struct reader {
    const uint8_t *p;
    size_t len, at;
};

static int64_t read_buf(void *opaque, void *buf, size_t length)
{
    struct reader *r = opaque;
    size_t n = r->len - r->at < length ? r->len - r->at : length;
    memcpy(buf, r->p + r->at, n);
    r->at += n;
    return (int64_t)n;
}

static int attach_uart(void *opaque, hvc_vm *vm, const void *user_data,
                       size_t length)
{
    (void)opaque;
    (void)user_data;
    (void)length;
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    return hvc_serial_create(vm, &so, NULL);
}

static hvc_hypervisor *hypervisor(void)
{
    static hvc_hypervisor *hv;
    if (!hv && hvc_hypervisor_open("kvm", &hv) < 0) {
        fprintf(stderr, "fuzz_stream: cannot open KVM: %s\n", hvc_last_error());
        abort();
    }
    return hv;
}

static void dump(const uint8_t *s, size_t size)
{
    const char *path = getenv("FUZZ_STREAM_DUMP");
    FILE *f = path ? fopen(path, "wb") : NULL;
    if (!f)
        return;
    fwrite(s, 1, size, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hvc_hypervisor *hv = hypervisor();
    uint8_t *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    if (crc32c(0, data, size) & 1)
        fix_crcs(s, size);
    dump(s, size);

    uint8_t key[HVC_STREAM_KEY_SIZE];
    for (int i = 0; i < HVC_STREAM_KEY_SIZE; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = attach_uart;
    if (size >= HEADER_SIZE) {
        uint32_t flags = (uint32_t)get_le(s + 44, 4);
        if ((flags & HDR_ENCRYPTED) && !(flags & HDR_PASSPHRASE))
            ro.key = key;
    }

    struct reader rd = {s, size, 0};
    hvc_stream st = HVC_STREAM_INIT;
    st.read = read_buf;
    st.opaque = &rd;
    hvc_vm *vm = NULL;
    if (hvc_vm_restore(hv, &st, &ro, &vm) == 0)
        hvc_vm_destroy(vm);
    free(s);
    return 0;
}
