/* libFuzzer target for the migration stream reader (docs/MIGRATION.md):
 * every input is read by the library's restore path (src/migration/
 * restore.c) from memory. Built only with clang and -DHVCORE_FUZZ=ON;
 * dev.sh runs it, time-boxed, over the seeds of tests/fuzz/make_seeds.c.
 *
 * Speed. Creating a KVM VM per input held the target to about 100
 * executions a second. The harness instead makes, once, one VM of each
 * shape the seeds have (make_seeds.c: 256 KiB of RAM at 0 and a 16550
 * "com1"; one vCPU with an in-kernel irqchip, no vCPU, two vCPUs and
 * HVC_VM_NO_IRQCHIP, or no vCPU and a virtio-rng "rng"), and restores into the
 * one whose own CONFIG the stream's CONFIG equals (hvi_vm_restore_reuse,
 * src/migration/reuse.c): every later section takes the same code as in a real
 * restore. A CONFIG that matches none ends the input after it is decoded and
 * checked. Between inputs the harness zeroes the RAM and resets the devices.
 * FUZZ_STREAM_CREATE=1 uses hvc_vm_restore() (a new VM each time) instead,
 * to replay a finding the way a user would hit it (its setup attaches only
 * "com1": streams of the virtio shape stop at the device count).
 *
 * Checks besides the sanitizers: RAM is caller memory with PROT_NONE guard
 * pages either side; a stream that restores gives a VM whose own saved
 * stream restores again (into the same VMs).
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
 * FUZZ_STREAM_DUMP=<path> writes the bytes actually handed to the reader
 * (after any CRC fix-up) to <path>, to turn a finding into a test. */
#include "fuzz_common.h"

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

#define crc32c fz_crc32c

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

/* src/migration/reuse.c (library-internal). */
int hvi_vm_restore_reuse(hvc_hypervisor *hv, const hvc_stream *stream,
                         const hvc_restore_options *opts, hvc_vm *const *vms,
                         size_t n, hvc_vm **out);

#define RAM (256u << 10)
#define NR_VMS 4

static hvc_vm *vms[NR_VMS];
static struct fz_ram rams[NR_VMS];

static hvc_vm *shape(uint32_t flags, uint32_t nvcpus, struct fz_ram *ram)
{
    *ram = fz_ram_new(RAM);
    hvc_vm *vm = fz_vm_new(flags, *ram, nvcpus);
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    if (hvc_serial_create(vm, &so, NULL) < 0)
        fz_fail("hvc_serial_create: %s", hvc_last_error());
    return vm;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vms[0] = shape(0, 1, &rams[0]);
    vms[1] = shape(0, 0, &rams[1]);
    vms[2] = shape(HVC_VM_NO_IRQCHIP, 2, &rams[2]);
    vms[3] = shape(0, 0, &rams[3]);
    hvc_virtio_mmio m = {0xd0000000u, 5, 0};
    if (hvc_virtio_rng_create(vms[3], &m, "rng", NULL) < 0)
        fz_fail("hvc_virtio_rng_create: %s", hvc_last_error());
    return 0;
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

static void dump(const uint8_t *s, size_t size)
{
    const char *path = getenv("FUZZ_STREAM_DUMP");
    FILE *f = path ? fopen(path, "wb") : NULL;
    if (!f)
        return;
    fwrite(s, 1, size, f);
    fclose(f);
}

struct sink {
    uint8_t *p;
    size_t len, cap;
};

static int64_t write_buf(void *opaque, const void *buf, size_t length)
{
    struct sink *k = opaque;
    if (k->cap - k->len < length) {
        size_t cap = (k->cap + length) * 2;
        uint8_t *p = realloc(k->p, cap);
        if (!p)
            return -12; /* ENOMEM */
        k->p = p;
        k->cap = cap;
    }
    memcpy(k->p + k->len, buf, length);
    k->len += length;
    return (int64_t)length;
}

/* A VM the stream restored into must save a stream that restores. */
static int create = -1;

static void check_own_stream(hvc_vm *vm, const uint8_t *key)
{
    struct sink k = {0};
    hvc_stream out = HVC_STREAM_INIT;
    out.write = write_buf;
    out.opaque = &k;
    hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
    so.key = key;
    if (hvc_vm_pause(vm) < 0)
        fz_fail("pausing the restored VM: %s", hvc_last_error());
    int r = hvc_vm_save(vm, &out, &so);
    hvc_vm_resume(vm);
    if (r < 0)
        fz_fail("a VM restored from the input does not save: %s",
                hvc_last_error());
    struct reader rd = {k.p, k.len, 0};
    hvc_stream in = HVC_STREAM_INIT;
    in.read = read_buf;
    in.opaque = &rd;
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.key = key;
    hvc_vm *again;
    int r2;
    if (create) {
        ro.setup = attach_uart;
        if ((r2 = hvc_vm_restore(fz_hv(), &in, &ro, &again)) == 0)
            hvc_vm_destroy(again);
    } else {
        r2 = hvi_vm_restore_reuse(fz_hv(), &in, &ro, vms, NR_VMS, &again);
    }
    if (r2 < 0) {
        const char *path = getenv("FUZZ_STREAM_DUMP_OWN");
        FILE *f = path ? fopen(path, "wb") : NULL;
        if (f) {
            fwrite(k.p, 1, k.len, f);
            fclose(f);
        }
        fz_fail("the stream a restored VM saved does not restore: %s",
                hvc_last_error());
    }
    free(k.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (create < 0)
        create = getenv("FUZZ_STREAM_CREATE") != NULL;
    uint8_t *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    if (fz_hash(data, size) & 1)
        fix_crcs(s, size);
    dump(s, size);

    uint8_t key[HVC_STREAM_KEY_SIZE];
    for (int i = 0; i < HVC_STREAM_KEY_SIZE; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    const uint8_t *use_key = NULL;
    if (size >= HEADER_SIZE) {
        uint32_t flags = (uint32_t)get_le(s + 44, 4);
        if ((flags & HDR_ENCRYPTED) && !(flags & HDR_PASSPHRASE))
            ro.key = use_key = key;
    }

    struct reader rd = {s, size, 0};
    hvc_stream st = HVC_STREAM_INIT;
    st.read = read_buf;
    st.opaque = &rd;
    hvc_vm *vm = NULL;
    if (create) {
        ro.setup = attach_uart;
        if (hvc_vm_restore(fz_hv(), &st, &ro, &vm) == 0) {
            check_own_stream(vm, use_key);
            hvc_vm_destroy(vm);
        }
    } else {
        int r = hvi_vm_restore_reuse(fz_hv(), &st, &ro, vms, NR_VMS, &vm);
        if (vm == vms[3])
            fz_flush(vm); /* a loaded virtio device kicks its queues */
        if (r == 0)
            check_own_stream(vm, use_key);
        /* Only the VM picked (on success or failure) was touched. */
        for (int i = 0; vm && i < NR_VMS; i++)
            if (vms[i] == vm) {
                memset(rams[i].p, 0, rams[i].len);
                hvc_vm_reset_devices(vms[i]);
            }
    }
    free(s);
    return 0;
}
