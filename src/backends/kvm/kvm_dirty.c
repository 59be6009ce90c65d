/* KVM dirty-page tracking: the per-slot bitmap, with manual re-protection
 * (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) where the kernel has it, or the
 * per-vCPU dirty ring (KVM_CAP_DIRTY_LOG_RING) in a VM created for it.
 *
 * Bitmap VMs get MANUAL_PROTECT_ENABLE, with INITIALLY_SET when offered,
 * at creation and never change it: KVM reads INITIALLY_SET both when a
 * slot starts logging and when its pages are re-protected (huge pages
 * mapped before the start are split then), so switching it while one slot
 * is tracked could leave that slot's huge pages writable and unlogged. A
 * clean start under INITIALLY_SET instead re-protects the whole slot once.
 *
 * Ring VMs never enable MANUAL_PROTECT2: with INITIALLY_SET, a start
 * would leave pages writable that the ring must see written. KVM keeps no
 * bitmap for them (KVM_GET_DIRTY_LOG fails with ENXIO), so the ring is
 * harvested here into per-slot bitmaps, on a fetch and whenever a vCPU's
 * ring fills. */
#include "kvm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Pages re-protected per KVM_CLEAR_DIRTY_LOG: 128 MiB, a multiple of 64.
 * KVM holds its MMU lock for one call; small calls let vCPUs fault in
 * between. */
#define CLEAR_CHUNK_PAGES 32768u
/* Dirty ring entries per vCPU (1 MiB), unless the kernel allows fewer:
 * as QEMU's largest, since a ring that overflows loses pages (below). */
#define RING_ENTRIES 65536u
/* Entries KVM keeps free past its soft limit (KVM_DIRTY_RING_RSVD_ENTRIES
 * and more for PML): a ring found fuller than size - this overflowed. */
#define RING_RESERVED 64u

void hvi_kvm_dirty_open(struct hvi_kvm *k)
{
    int fd = k->fd;
    int manual =
        ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
    k->dirty_manual = manual > 0 ? (uint32_t)manual : 0;
    int acq = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
    int ring = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
    /* x86 offers both; ACQ_REL is the one that documents the ordering
     * this code relies on, and the only one on weakly ordered hosts. */
    if (acq > 0) {
        k->ring_cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
        k->ring_max_bytes = (uint32_t)acq;
    } else if (ring > 0) {
        k->ring_cap = KVM_CAP_DIRTY_LOG_RING;
        k->ring_max_bytes = (uint32_t)ring;
    }
}

uint64_t hvi_kvm_dirty_cap(const struct hvi_kvm *k)
{
    uint64_t c = HVC_DIRTY_BITMAP;
    if (k->ring_max_bytes >= sizeof(struct kvm_dirty_gfn) * 64)
        c |= HVC_DIRTY_RING;
    if (k->dirty_manual & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)
        c |= HVC_DIRTY_MANUAL_CLEAR;
    if ((k->dirty_manual & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) &&
        (k->dirty_manual & KVM_DIRTY_LOG_INITIALLY_SET))
        c |= HVC_DIRTY_INITIALLY_SET;
    return c;
}

int hvi_kvm_dirty_vm_init(struct hvi_kvm_vm *vm, bool ring)
{
    struct hvi_kvm *k = vm->kvm;
    pthread_mutex_init(&vm->dirty_lock, NULL);
    if (ring) {
        if (hvi_kvm_dirty_cap(k) & HVC_DIRTY_RING) {
            uint32_t bytes = RING_ENTRIES * sizeof(struct kvm_dirty_gfn);
            while (bytes > k->ring_max_bytes)
                bytes /= 2;
            struct kvm_enable_cap c = {.cap = k->ring_cap, .args = {bytes}};
            if (ioctl(vm->fd, KVM_ENABLE_CAP, &c) == 0) {
                vm->ring_entries = bytes / sizeof(struct kvm_dirty_gfn);
                return 0;
            }
            int e = errno;
            return hvi_error(-e, "KVM_ENABLE_CAP(%s, %u bytes): %s",
                             k->ring_cap == KVM_CAP_DIRTY_LOG_RING_ACQ_REL
                                 ? "KVM_CAP_DIRTY_LOG_RING_ACQ_REL"
                                 : "KVM_CAP_DIRTY_LOG_RING",
                             bytes, hvc_strerror(-e));
        }
        return hvi_error(-ENOTSUP, "this KVM has no dirty ring "
                                   "(KVM_CAP_DIRTY_LOG_RING)");
    }
    if (!(k->dirty_manual & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE))
        return 0;
    uint64_t args = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
    if (k->dirty_manual & KVM_DIRTY_LOG_INITIALLY_SET)
        args |= KVM_DIRTY_LOG_INITIALLY_SET;
    struct kvm_enable_cap c = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
                               .args = {args}};
    /* Without it the plain KVM_GET_DIRTY_LOG still works. */
    if (ioctl(vm->fd, KVM_ENABLE_CAP, &c) == 0)
        vm->dirty_manual = (uint32_t)args;
    return 0;
}

void hvi_kvm_dirty_vm_free(struct hvi_kvm_vm *vm)
{
    for (size_t i = 0; i < vm->nr_dirty_slots; i++)
        free(vm->dirty_slots[i].bits);
    free(vm->dirty_slots);
    free(vm->ring_vcpus);
    pthread_mutex_destroy(&vm->dirty_lock);
}

/* Every page of every slot tracked by the ring, after entries may have
 * been lost. Caller holds dirty_lock. */
static void all_ring_slots_dirty(struct hvi_kvm_vm *vm)
{
    for (size_t i = 0; i < vm->nr_dirty_slots; i++) {
        struct hvi_kvm_dirty_slot *s = &vm->dirty_slots[i];
        if (!s->bits)
            continue;
        memset(s->bits, 0xff, (size_t)((s->npages + 63) / 64) * 8);
        if (s->npages % 64)
            s->bits[s->npages / 64] = (1ull << (s->npages % 64)) - 1;
    }
}

/* Moves every entry of every vCPU's ring into the tracked slots' bitmaps
 * and hands the entries back to KVM; stores in *taken how many there
 * were. Caller holds dirty_lock.
 *
 * KVM is meant to stop a vCPU once its ring passes a soft limit, some
 * entries short of full (KVM_EXIT_DIRTY_RING_FULL). A host that does not
 * (seen on KVM over PVM, which lets the guest fault many pages without
 * that check) wraps the ring over entries not yet harvested. A ring found
 * full is taken as such an overflow: every tracked page is reported, as
 * nothing else is sure. */
static int harvest(struct hvi_kvm_vm *vm, uint64_t *taken_out)
{
    uint64_t taken = 0;
    bool overflow = false;
    for (size_t i = 0; i < vm->nr_ring_vcpus; i++) {
        struct hvi_kvm_vcpu *v = vm->ring_vcpus[i];
        uint32_t before = v->ring_next;
        for (;;) {
            struct kvm_dirty_gfn *e =
                &v->ring[v->ring_next & (vm->ring_entries - 1)];
            uint32_t f = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
            if (!(f & KVM_DIRTY_GFN_F_DIRTY))
                break;
            uint32_t slot = e->slot & 0xffff; /* address space 0 only */
            uint64_t page = e->offset;
            if (slot < vm->nr_dirty_slots) {
                struct hvi_kvm_dirty_slot *s = &vm->dirty_slots[slot];
                if (s->bits && page < s->npages)
                    s->bits[page / 64] |= 1ull << (page % 64);
            }
            __atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
                             __ATOMIC_RELEASE);
            v->ring_next++;
            taken++;
            if (v->ring_next - before == vm->ring_entries)
                break; /* the whole ring: do not go round again */
        }
        if (v->ring_next - before > vm->ring_entries - RING_RESERVED)
            overflow = true;
    }
    if (overflow) {
        vm->ring_overflows++;
        all_ring_slots_dirty(vm);
    }
    if (taken_out)
        *taken_out = taken;
    if (taken && ioctl(vm->fd, KVM_RESET_DIRTY_RINGS, 0) < 0)
        return hvi_kvm_fail("KVM_RESET_DIRTY_RINGS", errno);
    return 0;
}

int hvi_kvm_dirty_vcpu_init(struct hvi_kvm_vcpu *v)
{
    struct hvi_kvm_vm *vm = v->vm;
    if (!vm->ring_entries)
        return 0;
    size_t bytes = vm->ring_entries * sizeof(struct kvm_dirty_gfn);
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
                   (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * page);
    if (p == MAP_FAILED)
        return hvi_kvm_fail("mapping the vCPU's dirty ring", errno);
    pthread_mutex_lock(&vm->dirty_lock);
    struct hvi_kvm_vcpu **grown =
        realloc(vm->ring_vcpus, (vm->nr_ring_vcpus + 1) * sizeof(*grown));
    if (!grown) {
        pthread_mutex_unlock(&vm->dirty_lock);
        munmap(p, bytes);
        return hvi_error(-ENOMEM, "out of memory for a dirty ring");
    }
    vm->ring_vcpus = grown;
    vm->ring_vcpus[vm->nr_ring_vcpus++] = v;
    v->ring = p;
    v->ring_next = 0;
    pthread_mutex_unlock(&vm->dirty_lock);
    return 0;
}

void hvi_kvm_dirty_vcpu_free(struct hvi_kvm_vcpu *v)
{
    struct hvi_kvm_vm *vm = v->vm;
    if (!v->ring)
        return;
    pthread_mutex_lock(&vm->dirty_lock);
    /* What the vCPU logged stays reported after it is gone. */
    (void)harvest(vm, NULL);
    for (size_t i = 0; i < vm->nr_ring_vcpus; i++)
        if (vm->ring_vcpus[i] == v) {
            vm->ring_vcpus[i] = vm->ring_vcpus[--vm->nr_ring_vcpus];
            break;
        }
    pthread_mutex_unlock(&vm->dirty_lock);
    munmap(v->ring, vm->ring_entries * sizeof(struct kvm_dirty_gfn));
    v->ring = NULL;
}

int hvi_kvm_dirty_ring_full(struct hvi_kvm_vcpu *v)
{
    struct hvi_kvm_vm *vm = v->vm;
    uint64_t taken = 0;
    pthread_mutex_lock(&vm->dirty_lock);
    int r = harvest(vm, &taken);
    if (r == 0 && taken == 0) {
        /* Full, yet nothing to take: the ring overflowed earlier and KVM
         * counts entries that were overwritten, which userspace cannot
         * hand back. Entering again would only exit again, for ever. */
        vm->ring_overflows++;
        all_ring_slots_dirty(vm);
        r = hvi_error(-EOVERFLOW,
                      "vCPU %u: KVM reports its dirty ring full but it "
                      "holds no entry: the ring overflowed (this host does "
                      "not stop vCPUs at the ring's soft limit), and the "
                      "vCPU cannot run again",
                      v->id);
    }
    pthread_mutex_unlock(&vm->dirty_lock);
    return r;
}

static int set_logging(struct hvi_kvm_vm *vm, uint32_t slot, uint64_t gpa,
                       uint64_t len, void *hva, uint32_t map_flags, bool on)
{
    struct kvm_userspace_memory_region m = {
        .slot = slot,
        .flags =
            ((map_flags & HVC_BACKEND_MAP_READONLY) ? KVM_MEM_READONLY : 0) |
            (on ? KVM_MEM_LOG_DIRTY_PAGES : 0),
        .guest_phys_addr = gpa,
        .memory_size = len,
        .userspace_addr = (uintptr_t)hva,
    };
    if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &m) < 0) {
        int e = errno;
        return hvi_error(-e,
                         "KVM_SET_USER_MEMORY_REGION (%s dirty logging of "
                         "slot %u, 0x%" PRIx64 "+0x%" PRIx64 "): %s",
                         on ? "start" : "stop", slot, gpa, len,
                         hvc_strerror(-e));
    }
    return 0;
}

/* The bitmap fetch: KVM_GET_DIRTY_LOG, then, with manual protection,
 * KVM_CLEAR_DIRTY_LOG for the chunks that have pages in them. */
static int fetch_bitmap(struct hvi_kvm_vm *vm, uint32_t slot, uint64_t npages,
                        uint64_t *bitmap)
{
    struct kvm_dirty_log log = {.slot = slot, .dirty_bitmap = bitmap};
    if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0)
        return hvi_kvm_fail("KVM_GET_DIRTY_LOG", errno);
    if (!vm->dirty_manual)
        return 0;
    for (uint64_t first = 0; first < npages; first += CLEAR_CHUNK_PAGES) {
        uint64_t n = npages - first;
        if (n > CLEAR_CHUNK_PAGES)
            n = CLEAR_CHUNK_PAGES;
        uint64_t *w = &bitmap[first / 64];
        bool any = false;
        for (uint64_t i = 0; i < (n + 63) / 64 && !any; i++)
            any = w[i] != 0;
        if (!any)
            continue;
        struct kvm_clear_dirty_log c = {
            .slot = slot,
            .num_pages = (uint32_t)n,
            .first_page = first,
            .dirty_bitmap = w,
        };
        if (ioctl(vm->fd, KVM_CLEAR_DIRTY_LOG, &c) < 0) {
            int e = errno;
            return hvi_error(-e,
                             "KVM_CLEAR_DIRTY_LOG (slot %u, pages "
                             "%" PRIu64 "+%" PRIu64 "): %s",
                             slot, first, n, hvc_strerror(-e));
        }
    }
    return 0;
}

int hvi_kvm_dirty_start(void *vm_priv, uint32_t slot, uint64_t gpa,
                        uint64_t len, void *hva, uint32_t map_flags,
                        uint32_t mode, uint32_t flags, uint32_t *used)
{
    struct hvi_kvm_vm *vm = vm_priv;
    bool ring = vm->ring_entries != 0;
    if (mode == HVC_DIRTY_AUTO)
        mode = ring ? HVC_DIRTY_RING : HVC_DIRTY_BITMAP;
    if (mode == HVC_DIRTY_RING && !ring)
        return hvi_error(-ENOTSUP,
                         "dirty ring asked for slot %u, but the VM was "
                         "created without HVC_VM_DIRTY_RING (KVM enables "
                         "the ring only before the first vCPU)",
                         slot);
    if (mode == HVC_DIRTY_BITMAP && ring)
        return hvi_error(-ENOTSUP,
                         "dirty bitmap asked for slot %u, but the VM was "
                         "created with HVC_VM_DIRTY_RING, and KVM keeps no "
                         "bitmap beside the ring",
                         slot);
    uint64_t npages = len / HVC_PAGE_SIZE;
    size_t words = (size_t)((npages + 63) / 64);

    pthread_mutex_lock(&vm->dirty_lock);
    int r = 0;
    uint64_t *bits = NULL;
    if (slot >= vm->nr_dirty_slots) {
        struct hvi_kvm_dirty_slot *grown =
            realloc(vm->dirty_slots, (slot + 1) * sizeof(*grown));
        if (!grown) {
            r = hvi_error(-ENOMEM, "out of memory tracking slot %u", slot);
            goto out;
        }
        memset(grown + vm->nr_dirty_slots, 0,
               (slot + 1 - vm->nr_dirty_slots) * sizeof(*grown));
        vm->dirty_slots = grown;
        vm->nr_dirty_slots = slot + 1;
    }
    /* The ring's harvest needs a home for the slot's pages; a clean
     * bitmap start needs somewhere to drop the first fetch. */
    bits = calloc(words ? words : 1, sizeof(*bits));
    if (!bits) {
        r = hvi_error(-ENOMEM, "out of memory tracking slot %u", slot);
        goto out;
    }
    if ((r = set_logging(vm, slot, gpa, len, hva, map_flags, true)) < 0)
        goto out;
    uint32_t u = mode;
    if (mode == HVC_DIRTY_BITMAP && vm->dirty_manual) {
        u |= HVC_DIRTY_MANUAL_CLEAR;
        if (vm->dirty_manual & KVM_DIRTY_LOG_INITIALLY_SET) {
            if (flags & HVC_BACKEND_DIRTY_CLEAN) {
                /* KVM set every page: re-protect them all now. */
                r = fetch_bitmap(vm, slot, npages, bits);
                if (r < 0) {
                    (void)set_logging(vm, slot, gpa, len, hva, map_flags,
                                      false);
                    goto out;
                }
                memset(bits, 0, words * sizeof(*bits));
            } else {
                u |= HVC_DIRTY_INITIALLY_SET;
            }
        }
    }
    struct hvi_kvm_dirty_slot *s = &vm->dirty_slots[slot];
    s->npages = npages;
    s->mode = mode;
    if (mode == HVC_DIRTY_RING) {
        s->bits = bits;
        bits = NULL;
    }
    s->tracked = true;
    *used = u;
out:
    pthread_mutex_unlock(&vm->dirty_lock);
    free(bits);
    return r;
}

int hvi_kvm_dirty_fetch(void *vm_priv, uint32_t slot, uint64_t len,
                        uint64_t *bitmap)
{
    struct hvi_kvm_vm *vm = vm_priv;
    uint64_t npages = len / HVC_PAGE_SIZE;
    size_t words = (size_t)((npages + 63) / 64);
    pthread_mutex_lock(&vm->dirty_lock);
    int r = 0;
    if (slot >= vm->nr_dirty_slots || !vm->dirty_slots[slot].tracked) {
        r = hvi_error(-ENOENT, "slot %u is not dirty-logged", slot);
        goto out;
    }
    struct hvi_kvm_dirty_slot *s = &vm->dirty_slots[slot];
    if (s->mode == HVC_DIRTY_BITMAP) {
        r = fetch_bitmap(vm, slot, npages, bitmap);
        goto out;
    }
    r = harvest(vm, NULL);
    /* Even when resetting failed: the entries are in the bitmaps now, and
     * KVM gives them back at the next reset. */
    memcpy(bitmap, s->bits, words * sizeof(*bitmap));
    memset(s->bits, 0, words * sizeof(*bitmap));
out:
    pthread_mutex_unlock(&vm->dirty_lock);
    return r;
}

/* Forgets the slot's state. Caller holds dirty_lock. */
static void forget(struct hvi_kvm_vm *vm, uint32_t slot)
{
    if (slot >= vm->nr_dirty_slots)
        return;
    struct hvi_kvm_dirty_slot *s = &vm->dirty_slots[slot];
    free(s->bits);
    memset(s, 0, sizeof(*s));
}

int hvi_kvm_dirty_stop(void *vm_priv, uint32_t slot, uint64_t gpa, uint64_t len,
                       void *hva, uint32_t map_flags)
{
    struct hvi_kvm_vm *vm = vm_priv;
    pthread_mutex_lock(&vm->dirty_lock);
    int r = set_logging(vm, slot, gpa, len, hva, map_flags, false);
    if (r == 0)
        forget(vm, slot);
    pthread_mutex_unlock(&vm->dirty_lock);
    return r;
}

void hvi_kvm_dirty_unmapped(struct hvi_kvm_vm *vm, uint32_t slot)
{
    pthread_mutex_lock(&vm->dirty_lock);
    forget(vm, slot);
    pthread_mutex_unlock(&vm->dirty_lock);
}
