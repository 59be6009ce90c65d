/* vCPU modes, registers by id, segments, FPU state. */
#include "hvtest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

Test(vcpu, real_mode_guest)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "real16");
    uint16_t word = 0xbeef;
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, &word, 2));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_REAL, 0);
    cr_assert_eq(hvt_run_done(v), 0x16);
    cr_assert_eq(hvt_reg(v, HVC_X86_RCX) & 0xffff, 0x68ac);
    cr_assert_eq(hvt_reg(v, HVC_X86_RSI) & 0xffff, 0xbeef);
    cr_assert_eq(hvt_reg(v, HVC_X86_CR0) & 1, 0, "still in real mode");
    hvc_x86_segment ds;
    HVT_OK(hvc_vcpu_get_segment(v, HVC_X86_DS, &ds));
    cr_assert_eq(ds.selector, 0x2000);
    cr_assert_eq(ds.base, 0x20000);
    hvt_close(&t);
}

Test(vcpu, real_mode_entry_above_64k)
{
    hvt t;
    hvt_open(&t, 0);
    /* load real16 at 0x18000: CS = 0x1000, IP = 0x8000 */
    unsigned char buf[256];
    HVT_OK(hvc_vm_read(t.vm, 0, buf, 0)); /* zero-length is fine */
    hvt_load(t.vm, "real16");
    HVT_OK(hvc_vm_read(t.vm, GUEST_LOAD, buf, sizeof(buf)));
    HVT_OK(hvc_vm_write(t.vm, 0x18000, buf, sizeof(buf)));
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(t.vm, 0, &v));
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.entry = 0x18000;
    HVT_OK(hvc_vcpu_set_mode(v, &o));
    hvc_x86_segment cs;
    HVT_OK(hvc_vcpu_get_segment(v, HVC_X86_CS, &cs));
    cr_assert_eq(cs.selector, 0x1000);
    cr_assert_eq(hvt_reg(v, HVC_X86_RIP), 0x8000);
    cr_assert_eq(hvt_run_done(v), 0x16);
    hvt_close(&t);
}

Test(vcpu, protected32_guest)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "prot32");
    uint32_t in[6] = {5, 1, 2, 3, 4, 1000};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, in, sizeof(in)));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_PROTECTED32, 0);
    cr_assert_eq(hvt_run_done(v), 0x32);
    uint32_t out;
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &out, 4));
    cr_assert_eq(out, 1010);
    cr_assert_eq(hvt_reg(v, HVC_X86_RBX) & 0xffffffff, 1010);
    cr_assert_eq(hvt_reg(v, HVC_X86_CR0) & 0x80000001, 1, "PE, no paging");
    cr_assert_eq(hvt_reg(v, HVC_X86_EFER) & 0x400, 0, "not long mode");
    hvc_x86_segment cs;
    HVT_OK(hvc_vcpu_get_segment(v, HVC_X86_CS, &cs));
    cr_assert_eq(cs.selector, 0x10);
    cr_assert_eq(cs.db, 1);
    cr_assert_eq(cs.l, 0);
    hvt_close(&t);
}

Test(vcpu, long64_guest)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "long64");
    uint64_t in[4] = {3, 0x100000000ull, 0x200000000ull, 7};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, in, sizeof(in)));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x64);
    uint64_t out[2];
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, out, sizeof(out)));
    cr_assert_eq(out[0], 0x300000007ull);
    cr_assert_eq(out[1], 3 * 0x300000007ull);
    hvc_reg ids[] = {HVC_X86_RAX,  HVC_X86_RBX, HVC_X86_R15, HVC_X86_RSP,
                     HVC_X86_EFER, HVC_X86_CR3, HVC_X86_RIP};
    uint64_t vals[7];
    HVT_OK(hvc_vcpu_get_regs(v, ids, vals, 7));
    cr_assert_eq(vals[0] >> 8, 0x300000007ull >> 8, "AL holds the status");
    cr_assert_eq(vals[1], 0x300000007ull);
    cr_assert_eq(vals[2], 0x1122334455667788ull);
    cr_assert_eq(vals[3], GUEST_STACK, "push/pop balanced");
    cr_assert_eq(vals[4] & 0x500, 0x500, "EFER.LME and LMA");
    cr_assert_eq(vals[5], GUEST_TABLES + 0x1000);
    cr_assert(vals[6] > GUEST_LOAD && vals[6] < GUEST_LOAD + 0x100);
    hvt_close(&t);
}

Test(vcpu, mode_tables_size)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    uint64_t size;
    HVT_OK(hvc_vcpu_mode_tables_size(t.vm, &o, &size));
    cr_assert_eq(size, 0);
    o.mode = HVC_X86_MODE_PROTECTED32;
    HVT_OK(hvc_vcpu_mode_tables_size(t.vm, &o, &size));
    cr_assert_eq(size, 4096);
    o.mode = HVC_X86_MODE_LONG64; /* 4 GiB by default: 3 + 4 pages */
    HVT_OK(hvc_vcpu_mode_tables_size(t.vm, &o, &size));
    cr_assert_eq(size, 7 * 4096);
    o.map_length = 64ull << 30;
    HVT_OK(hvc_vcpu_mode_tables_size(t.vm, &o, &size));
    cr_assert_eq(size, 67 * 4096);
    o.map_length = 3ull << 29; /* not a GiB multiple */
    HVT_ERR(hvc_vcpu_mode_tables_size(t.vm, &o, &size), -EINVAL);
    o.map_length = 1024ull << 30;
    HVT_ERR(hvc_vcpu_mode_tables_size(t.vm, &o, &size), -EINVAL);
    hvt_close(&t);
}

Test(vcpu, set_mode_rejects_bad_options)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(t.vm, 0, &v));
    hvc_vcpu_mode_options o = HVC_VCPU_MODE_OPTIONS_INIT;
    o.mode = 7;
    HVT_ERR(hvc_vcpu_set_mode(v, &o), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "mode 7"), "%s", hvc_last_error());
    o.mode = HVC_X86_MODE_REAL;
    o.entry = 0x100000;
    HVT_ERR(hvc_vcpu_set_mode(v, &o), -EINVAL);
    o.mode = HVC_X86_MODE_PROTECTED32;
    o.entry = 0x100000000ull;
    HVT_ERR(hvc_vcpu_set_mode(v, &o), -EINVAL);
    o.entry = GUEST_LOAD;
    o.tables_addr = 0x1234;
    HVT_ERR(hvc_vcpu_set_mode(v, &o), -EINVAL);
    o.mode = HVC_X86_MODE_LONG64;
    o.tables_addr = HVT_MEM - 0x2000; /* 7 pages do not fit */
    HVT_ERR(hvc_vcpu_set_mode(v, &o), -EFAULT);
    o.size = 3;
    HVT_ERR(hvc_vcpu_set_mode(v, &o), -EINVAL);
    HVT_ERR(hvc_vcpu_set_mode(v, NULL), -EINVAL);
    HVT_ERR(hvc_vcpu_set_mode(NULL, &o), -EINVAL);
    hvt_close(&t);
}

Test(vcpu, registers_round_trip)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    hvc_reg ids[] = {HVC_X86_RAX,
                     HVC_X86_R8,
                     HVC_X86_R15,
                     HVC_X86_RBP,
                     HVC_X86_CR2,
                     HVC_X86_DR0,
                     HVC_X86_DR3,
                     HVC_X86_DR7,
                     HVC_X86_MSR(0xc0000102) /* KERNEL_GS_BASE */,
                     HVC_X86_MSR(0x174) /* SYSENTER_CS */,
                     HVC_X86_CR8};
    uint64_t in[] = {0xa,
                     0x8888888888888888ull,
                     0xf,
                     0xbbbb,
                     0xc2c2c2c2c2ull,
                     0xd0d0,
                     0xd3d3,
                     0x401,
                     0xffff800012345000ull,
                     0x10,
                     0x5};
    size_t n = sizeof(ids) / sizeof(ids[0]);
    HVT_OK(hvc_vcpu_set_regs(v, ids, in, n));
    uint64_t out[sizeof(ids) / sizeof(ids[0])];
    HVT_OK(hvc_vcpu_get_regs(v, ids, out, n));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], in[i], "register 0x%llx: 0x%llx != 0x%llx",
                     (unsigned long long)ids[i], (unsigned long long)out[i],
                     (unsigned long long)in[i]);
    /* EFER and APIC base by name and as MSRs agree */
    uint64_t efer = hvt_reg(v, HVC_X86_EFER);
    cr_assert_eq(hvt_reg(v, HVC_X86_MSR(0xc0000080)), efer);
    cr_assert_eq(hvt_reg(v, HVC_X86_APIC_BASE) & ~0xfffull, 0xfee00000ull);
    cr_assert_eq(hvt_reg(v, HVC_X86_MSR(0x1b)), hvt_reg(v, HVC_X86_APIC_BASE));
    hvt_close(&t);
}

Test(vcpu, set_regs_is_all_or_nothing)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    HVT_OK(hvc_vcpu_set_reg(v, HVC_X86_RAX, 1));
    uint64_t cr0 = hvt_reg(v, HVC_X86_CR0);
    /* CR0.PG without PE is invalid: the RAX write must be undone */
    hvc_reg ids[] = {HVC_X86_RAX, HVC_X86_CR0};
    uint64_t bad[] = {2, 0x80000000ull};
    cr_assert_lt(hvc_vcpu_set_regs(v, ids, bad, 2), 0);
    cr_assert_eq(hvt_reg(v, HVC_X86_RAX), 1);
    cr_assert_eq(hvt_reg(v, HVC_X86_CR0), cr0);
    /* an MSR KVM does not know: RAX and the valid MSR are put back */
    hvc_reg ids2[] = {HVC_X86_RAX, HVC_X86_MSR(0x174), HVC_X86_MSR(0x4b564dff)};
    uint64_t vals2[] = {3, 0x23, 1};
    HVT_OK(hvc_vcpu_set_reg(v, HVC_X86_MSR(0x174), 0x11));
    HVT_ERR(hvc_vcpu_set_regs(v, ids2, vals2, 3), -EIO);
    cr_assert(strstr(hvc_last_error(), "0x4b564dff"), "%s", hvc_last_error());
    cr_assert_eq(hvt_reg(v, HVC_X86_RAX), 1);
    cr_assert_eq(hvt_reg(v, HVC_X86_MSR(0x174)), 0x11);
    /* unknown and segment ids are refused before anything is written */
    hvc_reg ids3[] = {HVC_X86_RAX, 0x777};
    HVT_ERR(hvc_vcpu_set_regs(v, ids3, vals2, 2), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "0x777"), "%s", hvc_last_error());
    cr_assert(strstr(hvc_last_error(), "index 1"), "%s", hvc_last_error());
    hvc_reg ids4[] = {HVC_X86_CS};
    HVT_ERR(hvc_vcpu_get_regs(v, ids4, vals2, 1), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "segment"), "%s", hvc_last_error());
    cr_assert_eq(hvt_reg(v, HVC_X86_RAX), 1);
    uint64_t x;
    HVT_ERR(hvc_vcpu_get_reg(v, HVC_X86_MSR(0x4b564dff), &x), -EIO);
    HVT_ERR(hvc_vcpu_get_reg(v, 0x0012, &x), -EINVAL);
    HVT_ERR(hvc_vcpu_get_reg(v, HVC_X86_CR0 + 1, &x), -EINVAL);
    HVT_ERR(hvc_vcpu_get_reg(v, 0x200000000ull, &x), -EINVAL);
    HVT_ERR(hvc_vcpu_get_regs(v, NULL, &x, 1), -EINVAL);
    HVT_ERR(hvc_vcpu_get_regs(v, ids, NULL, 1), -EINVAL);
    HVT_OK(hvc_vcpu_get_regs(v, NULL, NULL, 0));
    hvt_close(&t);
}

Test(vcpu, segments_round_trip)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_PROTECTED32, 0);
    hvc_x86_segment fs = {0};
    fs.base = 0x12345000;
    fs.limit = 0xfffff;
    fs.selector = 0x18;
    fs.type = 3;
    fs.present = 1;
    fs.s = 1;
    fs.db = 1;
    HVT_OK(hvc_vcpu_set_segment(v, HVC_X86_FS, &fs));
    hvc_x86_segment back;
    HVT_OK(hvc_vcpu_get_segment(v, HVC_X86_FS, &back));
    cr_assert_eq(back.base, fs.base);
    cr_assert_eq(back.limit, fs.limit);
    cr_assert_eq(back.selector, fs.selector);
    cr_assert_eq(back.type, 3);
    cr_assert_eq(back.db, 1);
    hvc_x86_segment idt = {0};
    idt.base = 0x9000;
    idt.limit = 0x7ff;
    HVT_OK(hvc_vcpu_set_segment(v, HVC_X86_IDTR, &idt));
    HVT_OK(hvc_vcpu_get_segment(v, HVC_X86_IDTR, &back));
    cr_assert_eq(back.base, 0x9000);
    cr_assert_eq(back.limit, 0x7ff);
    HVT_OK(hvc_vcpu_get_segment(v, HVC_X86_GDTR, &back));
    cr_assert_eq(back.base, GUEST_TABLES);
    idt.limit = 0x10000;
    HVT_ERR(hvc_vcpu_set_segment(v, HVC_X86_IDTR, &idt), -EINVAL);
    fs.type = 16;
    HVT_ERR(hvc_vcpu_set_segment(v, HVC_X86_FS, &fs), -EINVAL);
    HVT_ERR(hvc_vcpu_get_segment(v, HVC_X86_RAX, &back), -EINVAL);
    HVT_ERR(hvc_vcpu_get_segment(v, HVC_X86_CS, NULL), -EINVAL);
    cr_assert_eq(sizeof(hvc_x86_segment), 32);
    cr_assert_eq(sizeof(hvc_exit), 264);
    hvt_close(&t);
}

Test(vcpu, fpu_state_moves_between_vcpus)
{
    hvt t;
    hvt_open(&t, 0);
    hvt_load(t.vm, "fpu64");
    uint8_t pattern[32];
    for (int i = 0; i < 32; i++)
        pattern[i] = (uint8_t)(0x40 + i * 7);
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, pattern, sizeof(pattern)));
    hvc_vcpu *a = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    hvc_vcpu *b = hvt_vcpu(t.vm, 1, HVC_X86_MODE_LONG64, 0x100);
    cr_assert_eq(hvt_run_done(a), 0x01); /* a loads xmm0, xmm7 */

    size_t size;
    HVT_OK(hvc_vcpu_fpu_state_size(a, &size));
    uint64_t cap;
    HVT_OK(hvc_hypervisor_get_cap(t.hv, HVC_CAP_FPU_STATE_SIZE, &cap));
    cr_assert_eq(size, cap);
    uint8_t *blob = malloc(size);
    HVT_ERR(hvc_vcpu_get_fpu_state(a, blob, size - 1), -ENOSPC);
    HVT_OK(hvc_vcpu_get_fpu_state(a, blob, size));
    HVT_ERR(hvc_vcpu_set_fpu_state(b, blob, size + 1), -EINVAL);
    HVT_OK(hvc_vcpu_set_fpu_state(b, blob, size));
    cr_assert_eq(hvt_run_done(b), 0x02); /* b stores them */
    uint8_t out[32];
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, out, sizeof(out)));
    cr_assert_arr_eq(out, pattern, sizeof(pattern));
    free(blob);
    hvt_close(&t);
}

Test(vcpu, create_rejects_bad_ids)
{
    hvt t;
    hvt_open(&t, 0);
    /* A backend that allows one VM per process (HVC_CAP_MAX_VMS 1:
     * Hypervisor.framework): the second VM replaces the first there. */
    uint64_t max_vms = 0;
    HVT_OK(hvc_hypervisor_get_cap(t.hv, HVC_CAP_MAX_VMS, &max_vms));
    if (max_vms == 1) {
        HVT_OK(hvc_vm_destroy(t.vm));
        t.vm = NULL;
    }
    hvc_vm *vm2;
    hvc_vm_options o = HVC_VM_OPTIONS_INIT;
    o.max_vcpus = 2;
    HVT_OK(hvc_vm_create(t.hv, &o, &vm2));
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(vm2, 1, &v));
    cr_assert_eq(hvc_vcpu_id(v), 1);
    cr_assert_eq(hvc_vcpu_vm(v), vm2);
    HVT_ERR(hvc_vcpu_create(vm2, 1, &v), -EEXIST);
    HVT_ERR(hvc_vcpu_create(vm2, 2, &v), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "vCPU id 2"), "%s", hvc_last_error());
    HVT_ERR(hvc_vcpu_create(vm2, 0, NULL), -EINVAL);
    HVT_ERR(hvc_vcpu_create(NULL, 0, &v), -EINVAL);
    HVT_OK(hvc_vm_destroy(vm2));
    o.max_vcpus = 1u << 30;
    HVT_ERR(hvc_vm_create(t.hv, &o, &vm2), -EINVAL);
    hvt_close(&t);
}
