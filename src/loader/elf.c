/* ELF images through libelf: PT_LOAD segments at their physical addresses,
 * and the PVH entry note. */
#include "loader.h"

#include <errno.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../os/lazy.h"

/* libelf is loaded for the first ELF kernel (src/os/lazy.h). */
#define ELF_SYMS(X)                                                            \
    X(elf_version)                                                             \
    X(elf_errmsg)                                                              \
    X(elf_memory)                                                              \
    X(elf_end)                                                                 \
    X(elf_kind)                                                                \
    X(elf_getphdrnum)                                                          \
    X(elf_getdata_rawchunk)                                                    \
    X(gelf_getphdr)                                                            \
    X(gelf_getnote)                                                            \
    X(gelf_getehdr)                                                            \
    X(gelf_getclass)
HVI_LAZY_TABLE(elf, HVCORE_SONAME_ELF, ELF_SYMS)
#define elf_version HVI_LAZY_USE(elf, elf_version)
#define elf_errmsg HVI_LAZY_USE(elf, elf_errmsg)
#define elf_memory HVI_LAZY_USE(elf, elf_memory)
#define elf_end HVI_LAZY_USE(elf, elf_end)
#define elf_kind HVI_LAZY_USE(elf, elf_kind)
#define elf_getphdrnum HVI_LAZY_USE(elf, elf_getphdrnum)
#define elf_getdata_rawchunk HVI_LAZY_USE(elf, elf_getdata_rawchunk)
#define gelf_getphdr HVI_LAZY_USE(elf, gelf_getphdr)
#define gelf_getnote HVI_LAZY_USE(elf, gelf_getnote)
#define gelf_getehdr HVI_LAZY_USE(elf, gelf_getehdr)
#define gelf_getclass HVI_LAZY_USE(elf, gelf_getclass)

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define MAX_SEGMENTS 64

/* Finds the PVH entry in the image's PT_NOTE segments; 0 when there is
 * none. libelf bounds each note to its segment. */
static int pvh_entry(Elf *e, size_t phnum, uint64_t size, uint64_t *entry)
{
    *entry = 0;
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_NOTE)
            continue;
        if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)
            return hvi_error(-EINVAL,
                             "ELF note segment %zu (offset 0x%" PRIx64
                             ", size 0x%" PRIx64 ") lies outside the file",
                             i, (uint64_t)ph.p_offset, (uint64_t)ph.p_filesz);
        Elf_Data *d = elf_getdata_rawchunk(e, (int64_t)ph.p_offset, ph.p_filesz,
                                           ELF_T_NHDR);
        if (!d)
            continue;
        size_t off = 0, name_off, desc_off;
        GElf_Nhdr nh;
        while (off < d->d_size &&
               (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
            const char *name = (const char *)d->d_buf + name_off;
            if (nh.n_type != XEN_ELFNOTE_PHYS32_ENTRY || nh.n_namesz != 4 ||
                memcmp(name, "Xen", 4) != 0)
                continue;
            const uint8_t *desc = (const uint8_t *)d->d_buf + desc_off;
            if (nh.n_descsz == 4) {
                uint32_t v;
                memcpy(&v, desc, 4);
                *entry = v;
            } else if (nh.n_descsz == 8) {
                memcpy(entry, desc, 8);
            } else {
                return hvi_error(-EINVAL,
                                 "PVH entry note has a %u-byte value (4 or 8 "
                                 "expected)",
                                 nh.n_descsz);
            }
            if (*entry == 0 || *entry > UINT32_MAX)
                return hvi_error(-EINVAL,
                                 "PVH entry 0x%" PRIx64 " is not a 32-bit "
                                 "physical address",
                                 *entry);
            return 0;
        }
    }
    return 0;
}

static int load_segments(struct plan *p, Elf *e, size_t phnum, uint64_t size)
{
    const uint8_t *image = p->opts.kernel;
    unsigned loads = 0;
    p->info.kernel_start = UINT64_MAX;
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e, (int)i, &ph))
            return hvi_error(-EINVAL, "ELF program header %zu unreadable: %s",
                             i, elf_errmsg(-1));
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
            continue;
        if (++loads > MAX_SEGMENTS)
            return hvi_error(-EINVAL,
                             "ELF image has more than %d loadable "
                             "segments",
                             MAX_SEGMENTS);
        if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)
            return hvi_error(
                -EINVAL,
                "ELF segment %zu (offset 0x%" PRIx64 ", size 0x%" PRIx64
                ") lies outside the %" PRIu64 "-byte file",
                i, (uint64_t)ph.p_offset, (uint64_t)ph.p_filesz, size);
        if (ph.p_filesz > ph.p_memsz)
            return hvi_error(-EINVAL,
                             "ELF segment %zu has file size 0x%" PRIx64
                             " above its memory size 0x%" PRIx64,
                             i, (uint64_t)ph.p_filesz, (uint64_t)ph.p_memsz);
        uint64_t pa = ph.p_paddr;
        if (pa + ph.p_memsz < pa)
            return hvi_error(-EFAULT,
                             "ELF segment %zu at 0x%" PRIx64
                             " wraps the address space",
                             i, pa);
        int r = hvi_plan_add(p, pa, image + ph.p_offset, ph.p_filesz,
                             ph.p_memsz - ph.p_filesz, "ELF segment");
        if (r < 0)
            return r;
        if (pa < p->info.kernel_start)
            p->info.kernel_start = pa;
        if (pa + ph.p_memsz > p->info.kernel_end)
            p->info.kernel_end = pa + ph.p_memsz;
    }
    if (!loads)
        return hvi_error(-EINVAL, "ELF image has no loadable segment");
    return 0;
}

static int load(struct plan *p, Elf *e)
{
    uint64_t size = p->opts.kernel_size;
    GElf_Ehdr eh;
    if (elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh))
        return hvi_error(-EINVAL, "not a valid ELF image: %s", elf_errmsg(-1));
    int cls = gelf_getclass(e);
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        (cls == ELFCLASS32 && eh.e_machine != EM_386 &&
         eh.e_machine != EM_X86_64) ||
        (cls == ELFCLASS64 && eh.e_machine != EM_X86_64) ||
        (cls != ELFCLASS32 && cls != ELFCLASS64))
        return hvi_error(-EINVAL,
                         "ELF image is not little-endian x86 (class %d, "
                         "machine %u)",
                         cls, eh.e_machine);
    if (eh.e_type != ET_EXEC)
        return hvi_error(-EINVAL, "ELF image type %u is not an executable",
                         eh.e_type);
    size_t phnum;
    if (elf_getphdrnum(e, &phnum) != 0 || phnum == 0 || phnum > 4096)
        return hvi_error(-EINVAL, "ELF image has no usable program headers");
    if (eh.e_phoff > size ||
        (uint64_t)phnum * eh.e_phentsize > size - eh.e_phoff)
        return hvi_error(-EINVAL, "ELF program headers lie outside the file");

    int r = load_segments(p, e, phnum, size);
    uint64_t pvh = 0;
    if (r == 0)
        r = pvh_entry(e, phnum, size, &pvh);
    if (r < 0)
        return r;
    if ((r = hvi_add_cmdline(p, BOOT_CMDLINE_MAX - 1)) < 0)
        return r;
    if (pvh) {
        p->info.protocol = HVC_BOOT_PVH;
        p->info.mode = HVC_X86_MODE_PROTECTED32;
        p->info.entry = pvh;
        if ((r = hvi_place_initrd(p, 1ull << 32)) < 0)
            return r;
        return hvi_add_pvh_start_info(p);
    }
    p->info.entry = eh.e_entry;
    if (cls == ELFCLASS32) {
        p->info.protocol = HVC_BOOT_FLAT;
        p->info.mode = HVC_X86_MODE_PROTECTED32;
        return 0;
    }
    p->info.protocol = HVC_BOOT_LINUX64;
    p->info.mode = HVC_X86_MODE_LONG64;
    if ((r = hvi_place_initrd(p, 1ull << 32)) < 0)
        return r;
    return hvi_add_boot_params(p, NULL, 0);
}

int hvi_load_elf(struct plan *p)
{
    int r = hvi_lazy_elf();
    if (r < 0)
        return r;
    if (elf_version(EV_CURRENT) == EV_NONE)
        return hvi_error(-ENOTSUP, "libelf is too old: %s", elf_errmsg(-1));
    /* libelf wants a writable buffer; give it a private copy so the
     * caller's stays untouched whatever libelf does. */
    char *copy = hvi_plan_alloc(p, p->opts.kernel_size);
    if (!copy)
        return hvi_error(-ENOMEM,
                         "out of memory reading a %" PRIu64 "-byte ELF image",
                         p->opts.kernel_size);
    memcpy(copy, p->opts.kernel, p->opts.kernel_size);
    p->opts.kernel = copy;
    Elf *e = elf_memory(copy, p->opts.kernel_size);
    if (!e)
        return hvi_error(-EINVAL, "not a valid ELF image: %s", elf_errmsg(-1));
    r = load(p, e);
    elf_end(e);
    return r;
}
