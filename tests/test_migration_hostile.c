/* Hostile streams: every single-byte flip of a small snapshot, truncation
 * at every section boundary and at random offsets, oversized lengths,
 * unknown sections, wrong magic, versions and keys. Each must be refused
 * with a message that names where, and leave nothing behind: the source VM
 * keeps running, and no restored VM is handed out. With
 * HVCORE_FUZZ_CORPUS set, the valid streams are written there as seeds for
 * tests/fuzz/fuzz_stream.c. */
#include "migtest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

TestSuite(migration_hostile, .init = hvt_require_kvm, .timeout = 900);

#define SEC_HDR 24

static void seed(const char *name, const uint8_t *p, size_t len)
{
    const char *dir = getenv("HVCORE_FUZZ_CORPUS");
    if (!dir || !dir[0])
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/seed-%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, len, f);
        fclose(f);
    }
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Offsets of every section header in a well-formed stream. */
static size_t sections(const uint8_t *s, size_t len, size_t *at, size_t cap)
{
    size_t n = 0, off = 80;
    while (off + SEC_HDR <= len && n < cap) {
        at[n++] = off;
        off += SEC_HDR + get64(s + off + 8);
    }
    cr_assert_eq(off, len, "the stream does not parse to its end");
    return n;
}

/* A restore of @p s that must fail; returns its error. */
static int refused(hvc_hypervisor *hv, const uint8_t *s, size_t len,
                   const uint8_t *key, const char *what)
{
    hvc_vm *vm = NULL;
    int r = migt_restore_mem_vm(hv, s, len, key, NULL, &vm);
    cr_assert_lt(r, 0, "%s: accepted", what);
    cr_assert_null(vm, "%s: a VM was handed out", what);
    const char *msg = migt_last_error();
    cr_assert(strstr(msg, "stream"), "%s: message \"%s\"", what, msg);
    return r;
}

/* A VM small enough to flip every byte of: no vCPU, no interrupt
 * controller, 64 KiB with two pages of data, one UART. */
static uint8_t *tiny_stream(hvc_hypervisor *hv, size_t *len)
{
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    vo.flags = HVC_VM_NO_IRQCHIP;
    hvc_vm *vm;
    HVT_OK(hvc_vm_create(hv, &vo, &vm));
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = 64 * 1024;
    HVT_OK(hvc_vm_add_memory(vm, &mo, NULL));
    HVT_OK(hvc_vm_write(vm, 0x1000, "page one", 8));
    HVT_OK(hvc_vm_write(vm, 0x8ff8, "page two", 8));
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    HVT_OK(hvc_serial_create(vm, &so, NULL));
    migt m = {.hv = hv, .vm = vm};
    uint8_t *s = migt_save_mem(&m, NULL, NULL, len);
    HVT_OK(hvc_vm_destroy(vm));
    return s;
}

Test(migration_hostile, every_byte_flip_of_a_small_snapshot)
{
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv));
    size_t len;
    uint8_t *s = tiny_stream(hv, &len);
    seed("tiny", s, len);
    hvc_vm *vm;
    HVT_OK(migt_restore_mem_vm(hv, s, len, NULL, NULL, &vm));
    uint8_t check[8];
    HVT_OK(hvc_vm_read(vm, 0x8ff8, check, 8));
    cr_assert_eq(memcmp(check, "page two", 8), 0);
    HVT_OK(hvc_vm_destroy(vm));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < len; i++) {
        char what[64];
        snprintf(what, sizeof(what), "flip of byte %zu of %zu", i, len);
        s[i] ^= 0x20;
        refused(hv, s, len, NULL, what);
        s[i] ^= 0x20;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_log_info("%zu flips refused in %.1f s", len,
                (double)(t1.tv_sec - t0.tv_sec) +
                    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(s);
    HVT_OK(hvc_hypervisor_close(hv));
}

/* A full VM (vCPU, interrupt controllers, TSC, UART): every byte of every
 * header and of the CONFIG, TSC, DEVICE and END sections, every 7th byte of
 * IRQCHIP, every 29th of VCPU and every 997th of page data. */
Test(migration_hostile, flips_in_a_full_snapshot)
{
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 2), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    seed("full", s, len);
    size_t at[4096];
    size_t n = sections(s, len, at, 4096);
    size_t tried = 0;
    for (size_t i = 0; i < len; i++) {
        size_t k = 0;
        while (k + 1 < n && at[k + 1] <= i)
            k++;
        bool in_header = i < 80 || (i >= at[k] && i < at[k] + SEC_HDR);
        uint16_t id;
        memcpy(&id, s + at[k], 2);
        /* Every byte of the small sections; a sample of the large ones,
         * whose every byte the same CRC covers (each refused restore costs a
         * VM with a vCPU, ~10 ms here). */
        size_t stride = id == 2 ? 997 : id == 3 ? 29 : id == 4 ? 7 : 1;
        if (!in_header && (i - at[k]) % stride)
            continue;
        s[i] ^= 0x01;
        char what[64];
        snprintf(what, sizeof(what), "flip of byte %zu (section %u)", i, id);
        refused(m.hv, s, len, NULL, what);
        s[i] ^= 0x01;
        tried++;
    }
    cr_log_info("%zu flips of %zu bytes refused", tried, len);
    cr_assert_gt(tried, 1000);
    /* The source VM runs on, untouched. */
    cr_assert_eq(migt_run_until(&m, 4), 0);
    cr_assert_eq(migt_check(&m, 4), 0);
    free(s);
    migt_close(&m);
}

Test(migration_hostile, truncation)
{
    migt m;
    migt_open(&m, 2, NULL);
    cr_assert_eq(migt_run_until(&m, 1), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    size_t at[4096];
    size_t n = sections(s, len, at, 4096);
    /* At every section boundary, and one byte either side. */
    for (size_t k = 0; k < n; k++)
        for (int d = -1; d <= 1; d++) {
            size_t cut = at[k] + (size_t)d;
            char what[64];
            snprintf(what, sizeof(what), "truncated at %zu", cut);
            int r = refused(m.hv, s, cut, NULL, what);
            cr_assert_eq(r, -ENODATA, "%s: %d", what, r);
        }
    /* At random offsets (fixed seed, so a failure repeats). */
    srand(1234);
    for (int i = 0; i < 200; i++) {
        size_t cut = (size_t)rand() % len;
        char what[64];
        snprintf(what, sizeof(what), "truncated at %zu", cut);
        cr_assert_eq(refused(m.hv, s, cut, NULL, what), -ENODATA, "%s",
                     hvc_last_error());
    }
    cr_assert_eq(migt_run_until(&m, 2), 0);
    cr_assert_eq(migt_check(&m, 2), 0);
    free(s);
    migt_close(&m);
}

/* Rewrites a section header field and its CRC, so that only the field's
 * meaning (not the checksum) can refuse it. */
static void reseal(uint8_t *s, size_t off, size_t payload_crc_len)
{
    uint32_t crc = migt_crc32c(0, s + off, 20);
    crc = migt_crc32c(crc, s + off + SEC_HDR, payload_crc_len);
    memcpy(s + off + 20, &crc, 4);
}

Test(migration_hostile, lengths_ids_versions_magic)
{
    migt m;
    migt_open(&m, 1, NULL);
    cr_assert_eq(migt_run_until(&m, 1), 0);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    size_t at[4096];
    size_t n = sections(s, len, at, 4096);
    uint8_t *c = malloc(len + 64);

    /* Oversized length on each kind of section, CRC resealed. */
    for (size_t k = 0; k < n; k++) {
        memcpy(c, s, len);
        uint64_t huge = 1ull << 40;
        memcpy(c + at[k] + 8, &huge, 8);
        reseal(c, at[k], 0);
        refused(m.hv, c, len, NULL, "oversized length");
    }
    /* Unknown required id: refused; unknown optional id: skipped. */
    memcpy(c, s, len);
    uint16_t id = 0x100, flags = 1;
    memcpy(c + at[1], &id, 2);
    memcpy(c + at[1] + 2, &flags, 2);
    reseal(c, at[1], get64(c + at[1] + 8));
    cr_assert_eq(refused(m.hv, c, len, NULL, "unknown required id"), -EPROTO);
    /* A newer section version. */
    memcpy(c, s, len);
    uint32_t ver = 2;
    memcpy(c + at[0] + 4, &ver, 4);
    reseal(c, at[0], get64(c + at[0] + 8));
    cr_assert_eq(refused(m.hv, c, len, NULL, "section version"), -EPROTO);
    /* Magic, major version (newer, older), minor version, a backend name
     * that is not text, architecture, each with a good CRC. (Another
     * backend's name is accepted: test_migration_arch.c.) */
    struct {
        size_t off;
        uint8_t val;
        int err;
    } hdr[] = {{0, 'X', -EBADMSG},
               {8, HVC_STREAM_FORMAT_MAJOR + 1, -EPROTO},
               {8, HVC_STREAM_FORMAT_MAJOR - 1, -EPROTO},
               {10, HVC_STREAM_FORMAT_MINOR + 1, -EPROTO},
               {32, 0x01, -EBADMSG},
               {16, 'a', -EPROTO}};
    for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
        memcpy(c, s, len);
        c[hdr[i].off] = hdr[i].val;
        uint32_t crc = migt_crc32c(0, c, 76);
        memcpy(c + 76, &crc, 4);
        cr_assert_eq(refused(m.hv, c, len, NULL, "header field"), hdr[i].err,
                     "header byte %zu: %s", hdr[i].off, hvc_last_error());
    }
    /* An empty stream, and garbage. */
    refused(m.hv, s, 0, NULL, "empty");
    memset(c, 0xa5, len);
    refused(m.hv, c, len, NULL, "garbage");
    free(c);
    /* A second CONFIG section: out of order. */
    size_t cfg = at[1] - at[0];
    c = malloc(len + cfg + 64);
    memcpy(c, s, at[1]);
    memcpy(c + at[1], s + at[0], cfg);
    memcpy(c + at[1] + cfg, s + at[1], len - at[1]);
    refused(m.hv, c, len + cfg, NULL, "second CONFIG");
    /* An unknown optional section (with the END totals fixed up) is
     * skipped, and the stream restores. */
    memcpy(c, s, at[1]);
    uint8_t extra[SEC_HDR + 4] = {0x01, 0x80, 0, 0, 1, 0, 0, 0, 4};
    memcpy(extra + SEC_HDR, "junk", 4);
    reseal(extra, 0, 4);
    memcpy(c + at[1], extra, sizeof(extra));
    memcpy(c + at[1] + sizeof(extra), s + at[1], len - at[1]);
    size_t end = at[n - 1] + sizeof(extra);
    uint64_t t[4];
    memcpy(t, c + end + SEC_HDR, 32);
    t[0] += 1;
    t[3] += 4;
    memcpy(c + end + SEC_HDR, t, 32);
    reseal(c, end, 32);
    hvc_vm *vm = NULL;
    HVT_OK(migt_restore_mem_vm(m.hv, c, len + sizeof(extra), NULL, NULL, &vm));
    if (vm) /* NULL: restored (and destroyed) in a remote destination */
        HVT_OK(hvc_vm_destroy(vm));
    free(c);
    c = NULL;

    /* A key for a plain stream is ignored; a plain stream with a key given
     * still restores. An encrypted stream with a wrong key is refused. */
    uint8_t key[HVC_STREAM_KEY_SIZE] = {1, 2, 3};
    uint8_t *e = migt_save_mem(&m, key, NULL, &len);
    seed("encrypted", e, len);
    key[0] ^= 1;
    cr_assert_eq(refused(m.hv, e, len, key, "wrong key"), -EKEYREJECTED);
    key[0] ^= 1;
    /* A flipped ciphertext byte in the last section: the tag check. */
    e[len - 20] ^= 4;
    refused(m.hv, e, len, key, "flipped ciphertext");
    free(e);
    free(s);
    cr_assert_eq(migt_run_until(&m, 2), 0);
    migt_close(&m);
}

/* A stream's device name reaches the error message escaped: a terminal
 * escape sequence in it must not reach the operator's terminal. */
Test(migration_hostile, device_names_from_a_stream_are_escaped)
{
    hvc_hypervisor *hv;
    HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv));
    size_t len;
    uint8_t *s = tiny_stream(hv, &len);
    size_t at[64];
    size_t n = sections(s, len, at, 64);
    size_t dev = 0;
    for (size_t i = 0; i < n; i++)
        if (s[at[i]] == 6) /* DEVICE */
            dev = at[i];
    cr_assert_neq(dev, 0, "the stream has no DEVICE section");
    uint8_t *name = s + dev + SEC_HDR + 2;
    cr_assert_eq(memcmp(name, "com1", 4), 0);
    memcpy(name, "\x1b[2J", 4); /* "clear the screen", same length */
    reseal(s, dev, get64(s + dev + 8));
    hvc_vm *vm = NULL;
    int r = migt_restore_mem_vm(hv, s, len, NULL, NULL, &vm);
    cr_assert_eq(r, -ENOENT, "%d: %s", r, hvc_last_error());
    cr_assert_null(vm);
    const char *msg = hvc_last_error();
    cr_assert_null(strchr(msg, 0x1b), "a raw ESC reached the message: %s", msg);
    cr_assert(strstr(msg, "\"\\x1b[2J\""), "%s", msg);
    free(s);
    HVT_OK(hvc_hypervisor_close(hv));
}

/* Found by tests/fuzz/fuzz_stream: a VCPU section whose CPUID lacked leaf
 * 0xd subleaf 0 (the entry replaced by an unknown leaf) restored, but
 * some KVMs then add the XSAVE leaves back, duplicating the subleaves that
 * were there, and the VM's own next snapshot was refused. Whatever a
 * restore accepts, the restored VM's own stream must restore. */
Test(migration_hostile, a_restored_cpuid_saves_a_stream_that_restores)
{
    migt m;
    migt_open(&m, 1, NULL);
    size_t len;
    uint8_t *s = migt_save_mem(&m, NULL, NULL, &len);
    size_t at[4096];
    size_t n = sections(s, len, at, 4096);
    size_t vcpu = 0;
    for (size_t i = 0; i < n; i++)
        if (s[at[i]] == 3) /* VCPU */
            vcpu = at[i];
    cr_assert_neq(vcpu, 0, "the stream has no VCPU section");
    /* The CPUID blob: record field tag 16 (u16 tag, u16 kind, u32 length,
     * data padded to 8), a struct hvi_x86_cpuid (u32 version, size, count,
     * reserved) of 32-byte entries (src/arch/x86/arch_state.h). */
    uint64_t plen = get64(s + vcpu + 8);
    uint8_t *p = s + vcpu + SEC_HDR, *entry = NULL;
    for (uint64_t o = 0; o + 8 <= plen && !entry;) {
        uint16_t tag;
        uint32_t flen, nent;
        memcpy(&tag, p + o, 2);
        memcpy(&flen, p + o + 4, 4);
        if (tag == 16) {
            memcpy(&nent, p + o + 8 + 8, 4);
            for (uint32_t i = 0; i < nent && !entry; i++) {
                uint8_t *e = p + o + 8 + 16 + 32 * (size_t)i;
                uint32_t fn, idx;
                memcpy(&fn, e, 4);
                memcpy(&idx, e + 4, 4);
                if (fn == 0xd && idx == 0)
                    entry = e;
            }
        }
        o += 8 + ((flen + 7u) & ~7u);
    }
    cr_assert_not_null(entry, "no CPUID leaf 0xd subleaf 0 in the stream");
    uint32_t fn = 0x61705f64, idx = 0x72;
    memcpy(entry, &fn, 4);
    memcpy(entry + 4, &idx, 4);
    reseal(s, vcpu, plen);
    /* Restored, saved and restored again: here, or in a remote
     * destination under a one-VM backend (the source still held). */
    migt m2;
    int r = migt_restore_mem(&m2, s, len, NULL, NULL);
    if (r < 0) {
        cr_log_info("refused: %s", migt_last_error());
        cr_assert(strstr(migt_last_error(), "CPUID"), "%s",
                  migt_last_error());
    } else {
        cr_log_info("restored; its own stream restores again");
        size_t len2;
        uint8_t *s2 = migt_save_mem(&m2, NULL, NULL, &len2);
        hvc_vm *vm2 = NULL;
        r = migt_restore_mem_vm(m.hv, s2, len2, NULL, NULL, &vm2);
        cr_assert_eq(r, 0, "the restored VM's own stream: %s",
                     migt_last_error());
        if (vm2)
            HVT_OK(hvc_vm_destroy(vm2));
        free(s2);
    }
    migt_close(&m2);
    free(s);
    migt_close(&m);
}
