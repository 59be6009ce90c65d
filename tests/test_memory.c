/* Guest memory regions, the checked accessors, and guest/host sharing. */
#include "hvtest.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static hvc_memory_options region(uint64_t gpa, uint64_t len)
{
    hvc_memory_options o = HVC_MEMORY_OPTIONS_INIT;
    o.guest_addr = gpa;
    o.length = len;
    return o;
}

Test(memory, add_find_remove)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_memory_options o = region(0x10000000, 0x200000);
    hvc_memory_region *r;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &r));
    cr_assert_eq(hvc_memory_region_guest_addr(r), 0x10000000);
    cr_assert_eq(hvc_memory_region_length(r), 0x200000);
    cr_assert_not_null(hvc_memory_region_hva(r));
    cr_assert_geq(hvc_memory_region_fd(r), 0, "library memory is a memfd");
    hvc_memory_region *f;
    HVT_OK(hvc_vm_find_memory(t.vm, 0x101fffff, &f));
    cr_assert_eq(f, r);
    HVT_ERR(hvc_vm_find_memory(t.vm, 0x10200000, &f), -ENOENT);
    HVT_OK(hvc_vm_remove_memory(t.vm, r));
    HVT_ERR(hvc_vm_find_memory(t.vm, 0x10000000, &f), -ENOENT);
    hvt_close(&t);
}

Test(memory, rejects_bad_regions)
{
    hvt t;
    hvt_open(&t, 0); /* RAM at 0..HVT_MEM */
    hvc_memory_options o = region(0x1000, 0x1000);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EEXIST);
    cr_assert(strstr(hvc_last_error(), "overlaps"), "%s", hvc_last_error());
    o = region(HVT_MEM - 0x1000, 0x2000); /* straddles the end */
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EEXIST);
    o = region(0x10000800, 0x1000);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "0x10000800"), "%s", hvc_last_error());
    o = region(0x10000000, 0x1800);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = region(0x10000000, 0);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = region(0xfffffffffffff000ull, 0x2000); /* wraps */
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = region(1ull << 62, 0x1000); /* beyond the physical address width */
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = region(0x10000000, 0x1000);
    o.flags = 0x80;
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = region(0x10000000, 0x1000);
    o.host_addr = (void *)0x1234;
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o = region(0x10000000, 0x1000);
    o.size = 4; /* an options size this library does not know */
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    o.size = sizeof(o) + 64;
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EINVAL);
    HVT_ERR(hvc_vm_add_memory(t.vm, NULL, NULL), -EINVAL);
    o = region(0x10000000, 0x1000);
    HVT_ERR(hvc_vm_add_memory(NULL, &o, NULL), -EINVAL);
    /* KVM's real-mode TSS and identity map live at 0xfffbc000..0xfffbffff:
     * RAM over them, or straddling into them, is refused by name; RAM
     * right below and right above fits. Other backends reserve nothing. */
    o = region(0xfff00000, 0x100000);
    if (strcmp(hvt_backend(), "kvm") == 0) {
        HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EEXIST);
        cr_assert(strstr(hvc_last_error(), "0xfffbc000"), "%s",
                  hvc_last_error());
        o = region(0xfffbf000, 0x1000);
        HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EEXIST);
        o = region(0xfffbb000, 0x2000);
        HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -EEXIST);
    } else {
        hvc_memory_region *high;
        HVT_OK(hvc_vm_add_memory(t.vm, &o, &high));
        HVT_OK(hvc_vm_remove_memory(t.vm, high));
    }
    hvc_memory_region *below, *above;
    o = region(0xfffbb000, 0x1000);
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &below));
    o = region(0xfffc0000, 0x40000);
    HVT_OK(hvc_vm_add_memory(t.vm, &o, &above));
    HVT_OK(hvc_vm_remove_memory(t.vm, below));
    HVT_OK(hvc_vm_remove_memory(t.vm, above));
    /* the map is unchanged: the original region is still the only one */
    hvc_memory_region *f;
    HVT_OK(hvc_vm_find_memory(t.vm, 0, &f));
    cr_assert_eq(f, t.ram);
    HVT_ERR(hvc_vm_find_memory(t.vm, 0x10000000, &f), -ENOENT);
    hvt_close(&t);
}

Test(memory, slot_exhaustion)
{
    hvt t;
    hvt_open(&t, 0);
    uint64_t slots;
    HVT_OK(hvc_hypervisor_get_cap(t.hv, HVC_CAP_MAX_MEMORY_REGIONS, &slots));
    cr_assert(slots >= 32 && slots < 100000, "%llu", (unsigned long long)slots);
    /* One slot is the RAM; fill the rest with one-page regions carved from
     * one caller mapping (library regions would each hold a memfd). */
    uint8_t *pages = mmap(NULL, slots * 0x1000, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(pages, MAP_FAILED);
    uint64_t base = 0x100000000ull;
    for (uint64_t i = 1; i < slots; i++) {
        hvc_memory_options o = region(base + i * 0x2000, 0x1000);
        o.host_addr = pages + i * 0x1000;
        HVT_OK(hvc_vm_add_memory(t.vm, &o, NULL));
    }
    hvc_memory_options o = region(base, 0x1000);
    HVT_ERR(hvc_vm_add_memory(t.vm, &o, NULL), -ENOSPC);
    cr_assert(strstr(hvc_last_error(), "slots"), "%s", hvc_last_error());
    /* freeing one makes room again */
    hvc_memory_region *r;
    HVT_OK(hvc_vm_find_memory(t.vm, base + 0x2000, &r));
    HVT_OK(hvc_vm_remove_memory(t.vm, r));
    HVT_OK(hvc_vm_add_memory(t.vm, &o, NULL));
    hvt_close(&t);
    munmap(pages, slots * 0x1000);
}

Test(memory, accessors_are_bounds_checked)
{
    hvt t;
    hvt_open(&t, 0);
    char buf[64] = "hello guest";
    HVT_OK(hvc_vm_write(t.vm, 0x5000, buf, sizeof(buf)));
    char back[64];
    HVT_OK(hvc_vm_read(t.vm, 0x5000, back, sizeof(back)));
    cr_assert_arr_eq(buf, back, sizeof(buf));
    void *p;
    HVT_OK(hvc_vm_gpa_to_hva(t.vm, 0x5000, 11, &p));
    cr_assert_arr_eq(p, "hello guest", 11);
    cr_assert_eq(p, (char *)hvc_memory_region_hva(t.ram) + 0x5000);

    /* the last byte is fine, one more is not, and nothing is copied */
    HVT_OK(hvc_vm_write(t.vm, HVT_MEM - 1, buf, 1));
    memset(back, 0x5a, sizeof(back));
    HVT_ERR(hvc_vm_read(t.vm, HVT_MEM - 8, back, 16), -EFAULT);
    cr_assert(strstr(hvc_last_error(), "0x3ffff8"), "%s", hvc_last_error());
    cr_assert_eq(back[0], 0x5a);
    HVT_ERR(hvc_vm_write(t.vm, HVT_MEM, buf, 1), -EFAULT);
    HVT_ERR(hvc_vm_write(t.vm, UINT64_MAX, buf, 2), -EFAULT);
    HVT_ERR(hvc_vm_read(t.vm, UINT64_MAX - 1, back, 8), -EFAULT);
    HVT_ERR(hvc_vm_gpa_to_hva(t.vm, HVT_MEM - 4, 8, &p), -EFAULT);
    HVT_ERR(hvc_vm_gpa_to_hva(t.vm, 0, 0, &p), -EINVAL);
    HVT_ERR(hvc_vm_gpa_to_hva(t.vm, 0, SIZE_MAX, &p), -EFAULT);
    HVT_ERR(hvc_vm_read(t.vm, 0, NULL, 4), -EINVAL);
    HVT_ERR(hvc_vm_read(NULL, 0, back, 4), -EINVAL);

    /* an access spanning two adjacent regions is refused as a whole */
    hvc_memory_options o = region(HVT_MEM, 0x1000);
    HVT_OK(hvc_vm_add_memory(t.vm, &o, NULL));
    HVT_ERR(hvc_vm_read(t.vm, HVT_MEM - 4, back, 8), -EFAULT);
    hvt_close(&t);
}

Test(memory, caller_supplied_memory)
{
    hvt_require_kvm();
    hvc_hypervisor *hv;
    hvc_vm *vm;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    HVT_OK(hvc_vm_create(hv, NULL, &vm));
    size_t len = 4 << 20;
    uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(mem, MAP_FAILED);
    hvc_memory_options o = region(0, len);
    o.host_addr = mem;
    hvc_memory_region *r;
    HVT_OK(hvc_vm_add_memory(vm, &o, &r));
    cr_assert_eq(hvc_memory_region_fd(r), -1);
    cr_assert_eq(hvc_memory_region_hva(r), mem);
    hvt_load(vm, "long64");
    /* the guest sums what the host put in the caller's own memory */
    uint64_t *in = (uint64_t *)(mem + DATA_IN);
    in[0] = 3;
    in[1] = 100;
    in[2] = 20;
    in[3] = 3;
    hvc_vcpu *v = hvt_vcpu(vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x64);
    cr_assert_eq(*(uint64_t *)(mem + DATA_OUT), 123);
    HVT_OK(hvc_vm_destroy(vm));
    /* still the caller's: mapped and readable after the VM is gone */
    cr_assert_eq(*(uint64_t *)(mem + DATA_OUT + 8), 369);
    munmap(mem, len);
    HVT_OK(hvc_hypervisor_close(hv));
}

Test(memory, readonly_region_writes_exit_as_mmio)
{
    hvt t;
    hvt_open(&t, 0);
    uint64_t ro;
    HVT_OK(hvc_hypervisor_get_cap(t.hv, HVC_CAP_READONLY_MEMORY, &ro));
    cr_assert_eq(ro, 1);
    /* Read-only region at DATA_OUT's place: remove RAM, re-add in parts. */
    HVT_OK(hvc_vm_remove_memory(t.vm, t.ram));
    hvc_memory_options lo = region(0, DATA_OUT);
    hvc_memory_options rom = region(DATA_OUT, 0x10000);
    rom.flags = HVC_MEMORY_READONLY;
    hvc_memory_options hi =
        region(DATA_OUT + 0x10000, HVT_MEM - DATA_OUT - 0x10000);
    hvc_memory_region *r;
    HVT_OK(hvc_vm_add_memory(t.vm, &lo, NULL));
    HVT_OK(hvc_vm_add_memory(t.vm, &rom, &r));
    HVT_OK(hvc_vm_add_memory(t.vm, &hi, NULL));
    cr_assert_eq(hvc_memory_region_flags(r), HVC_MEMORY_READONLY);
    uint64_t marker = 0x0123456789abcdefull;
    HVT_OK(hvc_vm_write(t.vm, DATA_OUT, &marker, 8)); /* host may write */
    hvt_load(t.vm, "long64");
    uint64_t in[2] = {1, 42};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, in, sizeof(in)));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(v, &e));
    cr_assert_eq(e->reason, HVC_EXIT_MMIO);
    cr_assert_eq(e->u.mmio.addr, DATA_OUT);
    cr_assert_eq(e->u.mmio.is_write, 1);
    cr_assert_eq(e->u.mmio.size, 8);
    cr_assert_eq(*(uint64_t *)e->u.mmio.data, 42);
    uint64_t now;
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &now, 8));
    cr_assert_eq(now, marker, "the guest's write must not reach ROM");
    hvt_close(&t);
}

Test(memory, memfd_is_shareable)
{
    hvt t;
    hvt_open(&t, 0);
    int fd = hvc_memory_region_fd(t.ram);
    cr_assert_geq(fd, 0);
    uint32_t *other =
        mmap(NULL, HVT_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(other, MAP_FAILED);
    other[0x1000] = 0xfeedface; /* a second mapping, as another process */
    uint32_t v;
    HVT_OK(hvc_vm_read(t.vm, 0x4000, &v, 4));
    cr_assert_eq(v, 0xfeedface);
    munmap(other, HVT_MEM);
    hvt_close(&t);
}
