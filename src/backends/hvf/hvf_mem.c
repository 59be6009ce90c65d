/* The backend's own guest memory accesses: guest-physical through the
 * slots it mapped, and linear through the guest's page tables (the
 * framework decodes nothing for us: string I/O and the emulator name
 * linear addresses). */
#include "hvf.h"

#include <errno.h>
#include <string.h>

#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define PTE_P 1ull
#define PTE_PS 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull

/* Host pointer for [gpa, gpa+len) when it lies in one slot. Caller holds
 * slot_lock. */
static uint8_t *find_slot(struct hvi_hvf_vm *vm, uint64_t gpa, size_t len,
                          bool write, struct hvi_hvf_slot **slot)
{
    for (uint32_t i = 0; i < vm->nr_slots; i++) {
        const struct hvi_hvf_slot *s = &vm->slots[i];
        if (!s->used || gpa < s->gpa || gpa - s->gpa >= s->len ||
            len > s->len - (gpa - s->gpa))
            continue;
        if (write && s->readonly)
            return NULL;
        *slot = &vm->slots[i];
        return s->hva + (gpa - s->gpa);
    }
    return NULL;
}

static uint8_t *find(struct hvi_hvf_vm *vm, uint64_t gpa, size_t len,
                     bool write)
{
    struct hvi_hvf_slot *s;
    return find_slot(vm, gpa, len, write, &s);
}

bool hvi_hvf_gpa_is_ram(struct hvi_hvf_vm *vm, uint64_t gpa, size_t len,
                        bool write)
{
    pthread_rwlock_rdlock(&vm->slot_lock);
    bool ok = find(vm, gpa, len, write) != NULL;
    pthread_rwlock_unlock(&vm->slot_lock);
    return ok;
}

/* Byte ranges may span slots that happen to be adjacent: copied in pieces
 * that stop at page boundaries. */
static int copy(struct hvi_hvf_vm *vm, uint64_t gpa, void *buf, size_t len,
                bool write)
{
    uint8_t *b = buf;
    pthread_rwlock_rdlock(&vm->slot_lock);
    while (len) {
        size_t n = 4096 - (gpa & 4095);
        if (n > len)
            n = len;
        struct hvi_hvf_slot *s;
        uint8_t *p = find_slot(vm, gpa, n, write, &s);
        if (!p) {
            pthread_rwlock_unlock(&vm->slot_lock);
            return -EFAULT;
        }
        if (write) {
            memcpy(p, b, n);
            hvi_hvf_dirty_mark(s, gpa, n); /* after the copy */
        } else
            memcpy(b, p, n);
        gpa += n;
        b += n;
        len -= n;
    }
    pthread_rwlock_unlock(&vm->slot_lock);
    return 0;
}

int hvi_hvf_gpa_read(struct hvi_hvf_vm *vm, uint64_t gpa, void *buf, size_t len)
{
    return copy(vm, gpa, buf, len, false);
}

int hvi_hvf_gpa_write(struct hvi_hvf_vm *vm, uint64_t gpa, const void *buf,
                      size_t len)
{
    return copy(vm, gpa, (void *)buf, len, true);
}

static int entry(struct hvi_hvf_vm *vm, uint64_t gpa, unsigned size,
                 uint64_t *e)
{
    *e = 0;
    if (hvi_hvf_gpa_read(vm, gpa, e, size) < 0 || !(*e & PTE_P))
        return -EFAULT;
    return 0;
}

/* Permissions are not checked: the guest already made this access, or is
 * making it with the instruction the backend emulates. */
int hvi_hvf_translate(struct hvi_hvf_vcpu *v, uint64_t lin, uint64_t *gpa)
{
    uint64_t cr0 = hvi_hvf_vmcs(v, VMCS_GUEST_CR0);
    if (!(cr0 & CR0_PG)) {
        *gpa = lin;
        return 0;
    }
    uint64_t cr3 = hvi_hvf_vmcs(v, VMCS_GUEST_CR3);
    uint64_t cr4 = hvi_hvf_vmcs(v, VMCS_GUEST_CR4);
    uint64_t efer = hvi_hvf_vmcs(v, VMCS_GUEST_IA32_EFER);
    struct hvi_hvf_vm *vm = v->vm;
    uint64_t e;
    if (!(cr4 & CR4_PAE)) { /* 32-bit paging */
        uint32_t l = (uint32_t)lin;
        if (entry(vm, (cr3 & 0xfffff000u) + ((l >> 22) & 0x3ff) * 4, 4, &e))
            return -EFAULT;
        if ((e & PTE_PS) && (cr4 & CR4_PSE)) {
            *gpa =
                (e & 0xffc00000u) | (((e >> 13) & 0xff) << 32) | (l & 0x3fffff);
            return 0;
        }
        if (entry(vm, (e & 0xfffff000u) + ((l >> 12) & 0x3ff) * 4, 4, &e))
            return -EFAULT;
        *gpa = (e & 0xfffff000u) | (l & 0xfff);
        return 0;
    }
    int levels;
    uint64_t table;
    if (efer & EFER_LMA) {
        if (cr4 & CR4_LA57)
            return -ENOTSUP;
        levels = 4;
        table = cr3 & PTE_ADDR;
    } else { /* PAE: the PDPTE, then two levels */
        if (entry(vm, (cr3 & 0xffffffe0u) + ((lin >> 30) & 3) * 8, 8, &e))
            return -EFAULT;
        levels = 2;
        table = e & PTE_ADDR;
    }
    for (int l = levels; l >= 1; l--) {
        unsigned shift = 12 + 9 * (unsigned)(l - 1);
        if (entry(vm, table + ((lin >> shift) & 0x1ff) * 8, 8, &e))
            return -EFAULT;
        if (l > 1 && l < 4 && (e & PTE_PS)) {
            uint64_t page = 1ull << shift;
            *gpa = (e & PTE_ADDR & ~(page - 1)) | (lin & (page - 1));
            return 0;
        }
        table = e & PTE_ADDR;
    }
    *gpa = table | (lin & 0xfff);
    return 0;
}

static int lin_copy(struct hvi_hvf_vcpu *v, uint64_t lin, void *buf, size_t len,
                    bool write)
{
    uint8_t *b = buf;
    while (len) {
        size_t n = 4096 - (lin & 4095);
        if (n > len)
            n = len;
        uint64_t gpa;
        int r = hvi_hvf_translate(v, lin, &gpa);
        if (r < 0)
            return r;
        r = write ? hvi_hvf_gpa_write(v->vm, gpa, b, n)
                  : hvi_hvf_gpa_read(v->vm, gpa, b, n);
        if (r < 0)
            return r;
        lin += n;
        b += n;
        len -= n;
    }
    return 0;
}

int hvi_hvf_lin_read(struct hvi_hvf_vcpu *v, uint64_t lin, void *buf,
                     size_t len)
{
    return lin_copy(v, lin, buf, len, false);
}

int hvi_hvf_lin_write(struct hvi_hvf_vcpu *v, uint64_t lin, const void *buf,
                      size_t len)
{
    return lin_copy(v, lin, (void *)buf, len, true);
}
