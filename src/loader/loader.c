/* hvc_vm_load_kernel(): options, format detection, and applying a checked
 * load plan; hvc_vcpu_boot(). */
#include "loader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int hvi_plan_add(struct plan *p, uint64_t gpa, const void *src, uint64_t len,
                 uint64_t zero, const char *what)
{
    if (len + zero < len || gpa + len + zero < gpa)
        return hvi_error(-EFAULT,
                         "%s at 0x%" PRIx64 " (+0x%" PRIx64 " +0x%" PRIx64
                         ") wraps the address space",
                         what, gpa, len, zero);
    struct chunk *c =
        realloc(p->chunks, (p->nr_chunks + 1) * sizeof(*p->chunks));
    if (!c)
        return hvi_error(-ENOMEM, "out of memory planning the load");
    p->chunks = c;
    c[p->nr_chunks++] = (struct chunk){gpa, src, len, zero, what};
    return 0;
}

void *hvi_plan_alloc(struct plan *p, size_t size)
{
    if (p->nr_owned == sizeof(p->owned) / sizeof(p->owned[0]))
        return NULL;
    void *b = calloc(1, size);
    if (b)
        p->owned[p->nr_owned++] = b;
    return b;
}

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->nr_owned; i++)
        free(p->owned[i]);
    free(p->chunks);
}

/* Every chunk must lie in RAM (one writable region) and no two may
 * overlap: a hostile image must not be able to place a segment over the
 * boot data or over another segment. */
static int check_plan(struct plan *p)
{
    for (size_t i = 0; i < p->nr_chunks; i++) {
        const struct chunk *c = &p->chunks[i];
        uint64_t n = c->len + c->zero;
        if (n == 0)
            continue;
        void *hva;
        hvc_memory_region *r;
        if (hvc_vm_gpa_to_hva(p->vm, c->gpa, n, &hva) < 0 ||
            hvc_vm_find_memory(p->vm, c->gpa, &r) < 0 ||
            (hvc_memory_region_flags(r) & HVC_MEMORY_READONLY))
            return hvi_error(-EFAULT,
                             "%s at 0x%" PRIx64 "+0x%" PRIx64
                             " is not inside guest RAM",
                             c->what, c->gpa, n);
        for (size_t j = 0; j < i; j++) {
            const struct chunk *d = &p->chunks[j];
            uint64_t m = d->len + d->zero;
            if (m && c->gpa < d->gpa + m && d->gpa < c->gpa + n)
                return hvi_error(-EEXIST,
                                 "%s at 0x%" PRIx64 "+0x%" PRIx64
                                 " overlaps %s at 0x%" PRIx64 "+0x%" PRIx64,
                                 c->what, c->gpa, n, d->what, d->gpa, m);
        }
    }
    return 0;
}

static void apply_plan(struct plan *p)
{
    for (size_t i = 0; i < p->nr_chunks; i++) {
        const struct chunk *c = &p->chunks[i];
        void *hva;
        if (c->len)
            hvc_vm_write(p->vm, c->gpa, c->src, c->len);
        if (c->zero &&
            hvc_vm_gpa_to_hva(p->vm, c->gpa + c->len, c->zero, &hva) == 0) {
            memset(hva, 0, c->zero);
            hvc_vm_mark_dirty(p->vm, c->gpa + c->len, c->zero);
        }
    }
}

static int detect(const hvc_boot_options *o)
{
    const uint8_t *k = o->kernel;
    if (o->kernel_size >= 4 && memcmp(k, "\177ELF", 4) == 0)
        return HVC_KERNEL_ELF;
    if (o->kernel_size >= 0x206 && memcmp(k + 0x202, "HdrS", 4) == 0)
        return HVC_KERNEL_BZIMAGE;
    return hvi_error(-ENOEXEC,
                     "kernel image (%" PRIu64 " bytes) is neither ELF nor a "
                     "Linux bzImage; raw images need HVC_KERNEL_RAW",
                     o->kernel_size);
}

static int load_raw(struct plan *p)
{
    const hvc_boot_options *o = &p->opts;
    if (o->raw_mode > HVC_X86_MODE_LONG64)
        return hvi_error(-EINVAL, "raw image mode %u is unknown", o->raw_mode);
    p->info.protocol = HVC_BOOT_FLAT;
    p->info.mode = o->raw_mode;
    if (o->raw_mode == HVC_X86_MODE_REAL)
        p->info.stack = 0xfff0; /* SS = 0: the top of the first 64 KiB */
    p->info.entry = o->raw_entry ? o->raw_entry : o->raw_address;
    /* An entry the mode cannot reach would load, then fail in
     * hvc_vcpu_boot(): refuse it here, with RAM untouched. */
    uint64_t reach = o->raw_mode == HVC_X86_MODE_REAL          ? 1ull << 20
                     : o->raw_mode == HVC_X86_MODE_PROTECTED32 ? 1ull << 32
                                                               : 0;
    if (reach && p->info.entry >= reach)
        return hvi_error(-EINVAL,
                         "raw image entry 0x%" PRIx64 " is beyond what %s "
                         "mode reaches (0x%" PRIx64 ")",
                         p->info.entry,
                         o->raw_mode == HVC_X86_MODE_REAL ? "real" : "32-bit",
                         reach);
    p->info.kernel_start = o->raw_address;
    p->info.kernel_end = o->raw_address + o->kernel_size;
    return hvi_plan_add(p, o->raw_address, o->kernel, o->kernel_size, 0,
                        "raw image");
}

static int read_options(hvc_boot_options *o, const hvc_boot_options *in)
{
    hvc_boot_options d = HVC_BOOT_OPTIONS_INIT;
    *o = d;
    int r = hvi_copy_options(o, sizeof(*o), in, sizeof(*o), "hvc_boot_options");
    if (r < 0)
        return r;
    if (o->format > HVC_KERNEL_RAW)
        return hvi_error(-EINVAL, "kernel format %u is unknown", o->format);
    if (!o->kernel || o->kernel_size == 0)
        return hvi_error(-EINVAL, "no kernel image given");
    if (o->initrd_size && !o->initrd)
        return hvi_error(-EINVAL, "initrd size %" PRIu64 " without a buffer",
                         o->initrd_size);
    return 0;
}

int hvc_vm_load_kernel(hvc_vm *vm, const hvc_boot_options *opts,
                       hvc_boot_info *info)
{
    if (!vm || !opts || !info)
        return hvi_error(-EINVAL, "hvc_vm_load_kernel: NULL argument");
    struct plan p = {.vm = vm};
    int r = read_options(&p.opts, opts);
    if (r < 0)
        return r;
    int format = p.opts.format;
    if (format == HVC_KERNEL_AUTO && (format = detect(&p.opts)) < 0)
        return format;
    p.info.format = (uint32_t)format;
    p.info.tables_address = BOOT_TABLES;
    p.info.stack = BOOT_STACK;
    switch (format) {
    case HVC_KERNEL_ELF: r = hvi_load_elf(&p); break;
    case HVC_KERNEL_BZIMAGE: r = hvi_load_bzimage(&p); break;
    default: r = load_raw(&p); break;
    }
    if (r == 0 && p.info.mode != HVC_X86_MODE_REAL) {
        /* The GDT (and page tables) hvc_vcpu_boot() writes are part of the
         * plan too, so nothing the image asks for can land on them. */
        hvc_vcpu_mode_options m = HVC_VCPU_MODE_OPTIONS_INIT;
        m.mode = p.info.mode;
        m.tables_addr = BOOT_TABLES;
        uint64_t size = 0;
        r = hvc_vcpu_mode_tables_size(vm, &m, &size);
        if (r == 0 && BOOT_TABLES + size > BOOT_AREA_END)
            r = hvi_error(-EFAULT,
                          "identity page tables for this much RAM "
                          "(0x%" PRIx64 " bytes) do not fit below 0x%llx",
                          size, BOOT_AREA_END);
        if (r == 0)
            r = hvi_plan_add(&p, BOOT_TABLES, NULL, 0, size, "page tables");
    }
    if (r == 0)
        r = check_plan(&p);
    if (r == 0) {
        apply_plan(&p);
        *info = p.info;
    }
    plan_free(&p);
    return r;
}

int hvc_vcpu_boot(hvc_vcpu *vcpu, const hvc_boot_info *info)
{
    if (!vcpu || !info)
        return hvi_error(-EINVAL, "hvc_vcpu_boot: NULL argument");
    if (info->protocol > HVC_BOOT_LINUX64 || info->mode > HVC_X86_MODE_LONG64 ||
        (info->protocol == HVC_BOOT_PVH &&
         info->mode != HVC_X86_MODE_PROTECTED32) ||
        (info->protocol == HVC_BOOT_LINUX64 &&
         info->mode != HVC_X86_MODE_LONG64))
        return hvi_error(-EINVAL,
                         "hvc_vcpu_boot: boot info (protocol %u, "
                         "mode %u) is not from hvc_vm_load_kernel()",
                         info->protocol, info->mode);
    hvc_vcpu_mode_options m = HVC_VCPU_MODE_OPTIONS_INIT;
    m.mode = info->mode;
    m.entry = info->entry;
    m.stack = info->stack;
    m.tables_addr = info->tables_address;
    int r = hvc_vcpu_set_mode(vcpu, &m);
    if (r < 0)
        return r;
    if (info->protocol == HVC_BOOT_PVH)
        return hvc_vcpu_set_reg(vcpu, HVC_X86_RBX, info->params_address);
    if (info->protocol == HVC_BOOT_LINUX64)
        return hvc_vcpu_set_reg(vcpu, HVC_X86_RSI, info->params_address);
    return 0;
}
