/* A hand-over's FDS section (docs/MIGRATION.md, "Hand-over"): what each
 * descriptor passed with SCM_RIGHTS is. The sender describes its regions
 * and device descriptors; the receiver checks every descriptor as hostile
 * input (its kind, size, access mode and seals) against the stream's
 * configuration before mapping it, and keeps the device descriptors for
 * hvc_vm_handover_fd().
 *
 * Payload: u32 region count, u32 device descriptor count; per region
 * (32 bytes) u64 guest address, u64 length, u64 file offset, u32 region
 * flags, u32 zero; per device descriptor u16 slot, u16 name length, the
 * name. Descriptor i of the packet is region i, then device descriptor
 * i - regions. */
#define _GNU_SOURCE
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REGION_DESC 32u
#define MAX_SLOT 64u

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int hvi_ho_encode(hvc_memory_region *const *regs, const uint64_t *offsets,
                  size_t nr_regions, const struct hvi_ho_dev *devs,
                  size_t nr_devs, uint8_t **out, size_t *len)
{
    size_t n = 8 + nr_regions * REGION_DESC;
    for (size_t i = 0; i < nr_devs; i++)
        n += 4 + strlen(devs[i].name);
    uint8_t *p = calloc(1, n), *q = p;
    if (!p)
        return hvi_error(-ENOMEM, "out of memory");
    hvi_put32(q, (uint32_t)nr_regions);
    hvi_put32(q + 4, (uint32_t)nr_devs);
    q += 8;
    for (size_t i = 0; i < nr_regions; i++, q += REGION_DESC) {
        hvi_put64(q, regs[i]->gpa);
        hvi_put64(q + 8, regs[i]->len);
        hvi_put64(q + 16, offsets[i]);
        hvi_put32(q + 24, regs[i]->flags);
    }
    for (size_t i = 0; i < nr_devs; i++) {
        size_t nl = strlen(devs[i].name);
        hvi_put16(q, (uint16_t)devs[i].slot);
        hvi_put16(q + 2, (uint16_t)nl);
        memcpy(q + 4, devs[i].name, nl);
        q += 4 + nl;
    }
    *out = p;
    *len = n;
    return 0;
}

static const char *kind_of(mode_t m)
{
    if (S_ISFIFO(m))
        return "a pipe";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISDIR(m))
        return "a directory";
    return "not a regular file";
}

/* One region's descriptor, checked, mapped and added to @p vm. */
static int map_region(struct hvi_handover *ho, const struct hvi_sec *s,
                      uint32_t i, const uint8_t *q,
                      const struct hvi_region *want, hvc_vm *vm)
{
    uint64_t gpa = hvi_get64(q), len = hvi_get64(q + 8);
    uint64_t off = hvi_get64(q + 16);
    uint32_t flags = hvi_get32(q + 24), zero = hvi_get32(q + 28);
    int fd = ho->fds[i];
    if (gpa != want->gpa || len != want->len || flags != want->flags || zero)
        return hvi_fail(s, -EBADMSG,
                        "region %u is 0x%" PRIx64 "+0x%" PRIx64
                        " (flags 0x%x); the configuration says 0x%" PRIx64
                        "+0x%" PRIx64 " (flags 0x%x)",
                        i, gpa, len, flags, want->gpa, want->len, want->flags);
    if (off % HVI_PAGE || off + len < off)
        return hvi_fail(s, -EBADMSG,
                        "region %u: file offset 0x%" PRIx64
                        " is not page-aligned or wraps",
                        i, off);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return hvi_fail(s, -EBADMSG, "region %u: descriptor %d: %s", i, fd,
                        hvc_strerror(-errno));
    if (!S_ISREG(st.st_mode))
        return hvi_fail(s, -EBADMSG,
                        "region 0x%" PRIx64 "+0x%" PRIx64
                        ": its descriptor is %s (mode 0%o), not a regular "
                        "file or memfd",
                        gpa, len, kind_of(st.st_mode),
                        (unsigned)(st.st_mode & S_IFMT));
    if ((uint64_t)st.st_size < off + len)
        return hvi_fail(s, -EBADMSG,
                        "region 0x%" PRIx64 "+0x%" PRIx64
                        ": its file holds 0x%" PRIx64
                        " bytes, short of offset 0x%" PRIx64 " + length",
                        gpa, len, (uint64_t)st.st_size, off);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) != O_RDWR)
        return hvi_fail(s, -EBADMSG,
                        "region 0x%" PRIx64 "+0x%" PRIx64
                        ": its descriptor is not open for reading and "
                        "writing",
                        gpa, len);
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals > 0 && !(flags & HVC_MEMORY_READONLY) &&
        (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
        return hvi_fail(s, -EBADMSG,
                        "region 0x%" PRIx64 "+0x%" PRIx64
                        ": its memfd is sealed against writes (seals 0x%x)",
                        gpa, len, (unsigned)seals);
    void *hva =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
    if (hva == MAP_FAILED)
        return hvi_fail(s, -errno,
                        "region 0x%" PRIx64 "+0x%" PRIx64 ": mapping it: %s",
                        gpa, len, hvc_strerror(-errno));
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.guest_addr = gpa;
    mo.length = len;
    mo.host_addr = hva;
    /* The flags that fit caller memory; the rest are put back below. */
    mo.flags = flags & (HVC_MEMORY_READONLY | HVC_MEMORY_THP);
    hvc_memory_region *reg;
    int r = hvc_vm_add_memory(vm, &mo, &reg);
    if (r < 0) {
        munmap(hva, len);
        return hvi_fail(s, r, "region %u: %s", i, hvc_last_error());
    }
    /* The region now owns the mapping and the descriptor, as one the
     * library allocated: a later hand-over passes it on again. */
    reg->owned = true;
    reg->fd = fd;
    reg->flags = flags;
    ho->fds[i] = -1;
    return 0;
}

static int read_devs(struct hvi_handover *ho, const struct hvi_sec *s,
                     const uint8_t *q, size_t left)
{
    for (uint32_t j = 0; j < ho->nr_devs; j++) {
        if (left < 4)
            return hvi_fail(s, -EBADMSG, "device descriptor %u is cut short",
                            j);
        uint32_t slot = hvi_get16(q), nl = hvi_get16(q + 2);
        if (nl == 0 || nl >= sizeof(ho->devs[j].name) || 4 + nl > left)
            return hvi_fail(s, -EBADMSG, "device descriptor %u: name length %u",
                            j, nl);
        for (uint32_t k = 0; k < nl; k++)
            if (q[4 + k] < 0x20 || q[4 + k] > 0x7e)
                return hvi_fail(s, -EBADMSG,
                                "device descriptor %u: the name has byte "
                                "0x%02x",
                                j, q[4 + k]);
        if (slot >= MAX_SLOT)
            return hvi_fail(s, -EBADMSG, "device descriptor %u: slot %u", j,
                            slot);
        memcpy(ho->devs[j].name, q + 4, nl);
        ho->devs[j].name[nl] = 0;
        ho->devs[j].slot = slot;
        for (uint32_t k = 0; k < j; k++)
            if (ho->devs[k].slot == slot &&
                strcmp(ho->devs[k].name, ho->devs[j].name) == 0)
                return hvi_fail(s, -EBADMSG,
                                "device \"%s\" slot %u is passed twice",
                                HVI_QUOTE(ho->devs[j].name), slot);
        q += 4 + nl;
        left -= 4 + nl;
    }
    if (left)
        return hvi_fail(s, -EBADMSG, "%zu bytes after the descriptors", left);
    return 0;
}

int hvi_ho_apply(struct hvi_handover *ho, const struct hvi_sec *s,
                 const uint8_t *p, size_t len, const struct hvi_config *c,
                 hvc_vm *vm)
{
    uint64_t t0 = now_ns();
    if (len < 8)
        return hvi_fail(s, -EBADMSG, "%zu bytes, fewer than 8", len);
    uint32_t nr = hvi_get32(p), nd = hvi_get32(p + 4);
    if (nr != c->nr_regions)
        return hvi_fail(s, -EBADMSG, "%u regions; the configuration has %u", nr,
                        c->nr_regions);
    if ((uint64_t)nr + nd != ho->nr_fds)
        return hvi_fail(s, -EBADMSG,
                        "%u regions and %u device descriptors; the sender "
                        "passed %u descriptors",
                        nr, nd, ho->nr_fds);
    if ((uint64_t)nr * REGION_DESC > len - 8)
        return hvi_fail(s, -EBADMSG, "%u regions do not fit in %zu bytes", nr,
                        len);
    ho->nr_regions = nr;
    ho->nr_devs = nd;
    ho->devs = calloc(nd + 1, sizeof(*ho->devs));
    if (!ho->devs)
        return hvi_error(-ENOMEM, "out of memory");
    int r = read_devs(ho, s, p + 8 + (size_t)nr * REGION_DESC,
                      len - 8 - (size_t)nr * REGION_DESC);
    for (uint32_t i = 0; r == 0 && i < nr; i++)
        r = map_region(ho, s, i, p + 8 + (size_t)i * REGION_DESC,
                       &c->regions[i], vm);
    if (r < 0)
        return r;
    ho->seen = true;
    ho->vm = vm;
    vm->handover = ho;
    ho->map_ns += now_ns() - t0;
    return 0;
}

void hvi_ho_close(struct hvi_handover *ho)
{
    for (uint32_t i = 0; i < ho->nr_fds; i++)
        if (ho->fds[i] >= 0)
            close(ho->fds[i]);
    free(ho->fds);
    free(ho->devs);
    ho->fds = NULL;
    ho->devs = NULL;
    ho->nr_fds = 0;
}

int hvc_vm_handover_fd(hvc_vm *vm, const char *device, uint32_t index, int *fd)
{
    if (!vm || !device || !fd)
        return hvi_error(-EINVAL, "hvc_vm_handover_fd: NULL argument");
    struct hvi_handover *ho = vm->handover;
    if (!ho)
        return hvi_error(-ENOENT, "hvc_vm_handover_fd: no hand-over is being "
                                  "received into this VM");
    for (uint32_t j = 0; j < ho->nr_devs; j++) {
        int *slot = &ho->fds[ho->nr_regions + j];
        if (ho->devs[j].slot != index || strcmp(ho->devs[j].name, device))
            continue;
        if (*slot < 0)
            break;
        *fd = *slot;
        *slot = -1;
        return 0;
    }
    return hvi_error(-ENOENT,
                     "hvc_vm_handover_fd: the sender passed no descriptor %u "
                     "for device \"%s\" (or it was taken)",
                     index, HVI_QUOTE(device));
}
