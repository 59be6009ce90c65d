/* Saving a paused VM: the sections of docs/MIGRATION.md, in order. */
#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int save_vcpus(struct hvi_out *o, hvc_vm *vm)
{
    uint32_t max = hvi_vm_max_vcpus(vm);
    for (uint32_t i = 0; i < max; i++) {
        hvc_vcpu *v = hvi_vm_vcpu(vm, i);
        if (!v)
            continue;
        int r = hvi_vcpu_take_io(v);
        uint8_t *p = NULL;
        size_t len = 0;
        if (r == 0)
            r = hvi_vcpu_encode(v, &p, &len);
        if (r == 0)
            r = hvi_put_section(o, HVI_VCPU, i, p, len);
        free(p);
        if (r < 0)
            return r;
    }
    return 0;
}

static int save_tsc(struct hvi_out *o, hvc_vm *vm)
{
    if (!hvc_vm_vcpu_count(vm))
        return 0;
    size_t n;
    int r = hvc_vm_tsc_state_size(vm, &n);
    if (r < 0)
        return r;
    uint8_t *p = malloc(n);
    if (!p)
        return hvi_error(-ENOMEM, "out of memory saving the TSC state");
    if ((r = hvc_vm_save_tsc(vm, p, n, &n)) == 0)
        r = hvi_put_section(o, HVI_TSC, 0, p, n);
    free(p);
    return r;
}

/* A device's own save_state may fail without a message: name it. */
static int device_failed(const char *name, int err)
{
    char why[384];
    snprintf(why, sizeof(why), "%s", hvc_last_error());
    return hvi_error(err, "device %s: saving its state failed: %s", name,
                     why[0] ? why : hvc_strerror(err));
}

static int save_devices(struct hvi_out *o, hvc_vm *vm)
{
    hvc_device **devs;
    size_t n;
    int r = hvi_devices_snapshot(vm, &devs, &n);
    for (size_t i = 0; r == 0 && i < n; i++) {
        size_t need = 0;
        const char *name = hvc_device_name(devs[i]);
        r = hvc_device_save_state(devs[i], NULL, 0, &need);
        if (r != -ENOSPC && r < 0) {
            r = device_failed(name, r);
            break;
        }
        size_t nl = strlen(name);
        uint8_t *p = malloc(2 + nl + need);
        if (!p) {
            r = hvi_error(-ENOMEM, "out of memory saving device %s", name);
            break;
        }
        hvi_put16(p, (uint16_t)nl);
        memcpy(p + 2, name, nl);
        r = hvc_device_save_state(devs[i], p + 2 + nl, need, &need);
        if (r < 0)
            r = device_failed(name, r);
        if (r == 0)
            r = hvi_put_section(o, HVI_DEVICE, (uint32_t)i, p, 2 + nl + need);
        free(p);
    }
    free(devs);
    return r;
}

static int write_header(struct hvi_out *o, hvc_vm *vm, const uint8_t salt[16],
                        uint32_t flags)
{
    uint8_t h[HVI_HEADER_SIZE] = {0};
    memcpy(h, HVI_MAGIC, 8);
    hvi_put16(h + 8, HVC_STREAM_FORMAT_MAJOR);
    hvi_put16(h + 10, HVC_STREAM_FORMAT_MINOR);
    hvi_put32(h + 12, hvc_version());
    memcpy(h + 16, "x86_64", 6);
    strncpy((char *)h + 32, hvi_vm_backend(vm), 8);
    hvi_put32(h + 40, HVI_PAGE);
    hvi_put32(h + 44, flags);
    if (flags & HVI_HDR_ENCRYPTED)
        memcpy(h + 48, salt, 16);
    hvi_put32(h + 76, hvi_crc32c(0, h, 76));
    return hvi_out_write(o, h, sizeof(h));
}

/* What the stream will hold, about: the memory that may hold data (what a
 * save walks; never-written memory costs a few bytes) and room for the
 * rest. */
static uint64_t estimate(hvc_vm *vm)
{
    hvc_memory_region **regs;
    size_t n;
    uint64_t total = 1 << 16;
    if (hvi_memory_snapshot(vm, &regs, &n) < 0)
        return total;
    for (size_t i = 0; i < n; i++) {
        struct hvi_os_memory_walk *w;
        if (hvi_memory_walk_open(regs[i], &w) < 0) {
            total += regs[i]->len;
            continue;
        }
        uint64_t start, end;
        for (uint64_t off = 0; off < regs[i]->len; off = end) {
            if (hvi_memory_next_data(w, off, &start, &end) < 0) {
                total += regs[i]->len - off;
                break;
            }
            total += end - start;
        }
        hvi_memory_walk_close(w);
    }
    free(regs);
    return total;
}

int hvi_save_begin(hvc_vm *vm, struct hvi_out *o,
                   const hvc_save_options *in_opts, bool live)
{
    hvc_save_options opts = HVC_SAVE_OPTIONS_INIT;
    int r = 0;
    if (in_opts && (r = hvi_copy_options(&opts, sizeof(opts), in_opts,
                                         sizeof(opts), "hvc_save_options")) < 0)
        return r;
    if (opts.flags & ~HVC_SAVE_ALIGN_PAGES)
        return hvi_error(-EINVAL, "hvc_save_options: unknown flags 0x%x",
                         opts.flags);
    if (opts.key && opts.passphrase)
        return hvi_error(-EINVAL,
                         "hvc_save_options: give a key or a passphrase, not "
                         "both");
    if (opts.passphrase && !opts.passphrase[0])
        return hvi_error(-EINVAL, "hvc_save_options: the passphrase is empty");
    if (opts.user_data_length > HVC_STREAM_USER_DATA_MAX ||
        (opts.user_data_length && !opts.user_data))
        return hvi_error(-EINVAL,
                         "hvc_save_options: %zu bytes of user data (at most "
                         "%u, and not NULL)",
                         opts.user_data_length, HVC_STREAM_USER_DATA_MAX);
    if (!live && !hvc_vm_is_paused(vm))
        return hvi_error(-EBUSY, "the VM must be paused (hvc_vm_pause) to be "
                                 "saved");
    if ((r = hvi_state_supported(vm)) < 0)
        return r;
    o->align = opts.flags & HVC_SAVE_ALIGN_PAGES;
    o->progress = opts.progress;
    o->opaque = opts.opaque;
    o->total = estimate(vm);
    uint8_t salt[16] = {0};
    uint32_t hflags = 0;
    if (opts.key || opts.passphrase) {
        hflags = HVI_HDR_ENCRYPTED | (opts.passphrase ? HVI_HDR_PASSPHRASE : 0);
        if ((r = hvi_random(salt, sizeof(salt))) < 0 ||
            (r = hvi_crypt_new(opts.key, opts.passphrase, salt, &o->crypt)) < 0)
            return r;
    }
    uint8_t *cfg = NULL;
    size_t cfg_len = 0;
    if ((r = write_header(o, vm, salt, hflags | o->extra_hflags)) == 0 &&
        (r = hvi_config_encode(vm, &cfg, &cfg_len)) == 0)
        r = hvi_put_section(o, HVI_CONFIG, 0, cfg, cfg_len);
    free(cfg);
    if (r == 0 && opts.user_data_length)
        r = hvi_put_section(o, HVI_USER, 0, opts.user_data,
                            opts.user_data_length);
    return r;
}

int hvi_save_finish(hvc_vm *vm, struct hvi_out *o)
{
    int r = save_vcpus(o, vm);
    uint8_t *irq = NULL;
    size_t irq_len = 0;
    if (r == 0 && (r = hvi_irqchip_encode(vm, &irq, &irq_len)) == 0 && irq_len)
        r = hvi_put_section(o, HVI_IRQCHIP, 0, irq, irq_len);
    free(irq);
    if (r == 0)
        r = save_tsc(o, vm);
    if (r == 0)
        r = save_devices(o, vm);
    if (r == 0)
        r = hvi_put_end(o);
    return r;
}

int hvi_save(hvc_vm *vm, struct hvi_out *o, const hvc_save_options *opts)
{
    int r = hvi_save_begin(vm, o, opts, false);
    if (r == 0)
        r = hvi_save_memory(o, vm);
    if (r == 0)
        r = hvi_save_finish(vm, o);
    return r;
}

static int check_vm(hvc_vm *vm, const void *target, const char *what)
{
    if (!vm || !target)
        return hvi_error(-EINVAL, "%s: NULL %s", what, vm ? "target" : "VM");
    return 0;
}

int hvc_vm_save(hvc_vm *vm, const hvc_stream *stream,
                const hvc_save_options *opts)
{
    int r = check_vm(vm, stream, "hvc_vm_save");
    if (r < 0)
        return r;
    struct hvi_out o = {.fd = -1};
    if ((r = hvi_copy_options(&o.s, sizeof(o.s), stream, sizeof(o.s),
                              "hvc_stream")) < 0)
        return r;
    if (!o.s.write)
        return hvi_error(-EINVAL, "hvc_vm_save: the stream has no write "
                                  "callback");
    r = hvi_save(vm, &o, opts);
    hvi_out_free(&o);
    return r;
}

int hvc_vm_save_fd(hvc_vm *vm, int fd, const hvc_save_options *opts)
{
    if (!vm || fd < 0)
        return hvi_error(-EINVAL, "hvc_vm_save_fd: %s",
                         vm ? "negative descriptor" : "NULL VM");
    struct hvi_out o = {.fd = fd};
    int r = hvi_save(vm, &o, opts);
    hvi_out_free(&o);
    return r;
}
