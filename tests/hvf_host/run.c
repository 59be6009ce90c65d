/* tests/hvf_host: hv_vcpu_run(). One KVM_RUN (or none), then KVM's exit
 * turned into VMX's: the VMCS exit fields, and the guest's registers put
 * back to where VMX leaves them (see hvf_host.h for each case). */
#define _GNU_SOURCE
#include "hvfh.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

void hvfh_tsc_apply(struct hvfh_vcpu *v);

/* immediate_exit back to 0 unless a kick (hv_vcpu_interrupt, or mem.c
 * pausing the vCPUs) is pending: kickers set their flag before
 * immediate_exit, so a kick racing with this is never lost. */
static void rearm(struct hvfh_vcpu *v)
{
    __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
    if (atomic_load(&v->kick) || atomic_load(&hvfh_vm.memop))
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

/* Takes the kick signals still pending on this thread. A kick sent while
 * the thread was outside KVM_RUN, on a thread that blocks the signal, stays
 * pending; KVM_RUN unblocks it (KVM_SET_SIGNAL_MASK) and so returns EINTR at
 * once, every time, without the handler ever running: the signal is never
 * consumed and the vCPU never enters the guest again. The kick flag and
 * immediate_exit carry the kick itself, so the signal can go. */
static void drain_kick_signal(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, hvfh_kick_signal());
    struct timespec zero = {0, 0};
    while (sigtimedwait(&s, NULL, &zero) > 0)
        ;
}

/* KVM_RUN, never while mem.c replaces memslots (it holds run_lock for
 * writing after kicking every vCPU out). */
static int kvm_run(struct hvfh_vcpu *v)
{
    if (hvfh_msr_filter_apply())
        return -1;
    int slice = hvfh_slice_begin(v);
    pthread_rwlock_rdlock(&hvfh_vm.run_lock);
    int rc = ioctl(v->fd, KVM_RUN, 0);
    int e = errno;
    pthread_rwlock_unlock(&hvfh_vm.run_lock);
    if (rc < 0 && e == EINTR)
        drain_kick_signal();
    if (slice)
        rc = hvfh_slice_end(v, rc, &e);
    errno = e;
    return rc;
}

/* HV_ERROR, saying why on stderr (the framework has no message). */
static hv_return_t fail(const char *what, int err)
{
    fprintf(stderr, "hvf_host: %s%s%s\n", what, err ? ": " : "",
            err ? strerror(err) : "");
    return HV_ERROR;
}

static void set_exit(struct hvfh_vcpu *v, uint32_t reason, uint64_t qual)
{
    if (reason == VMX_REASON_IRQ_WND)
        hvfh_slice_reset(v);
    v->vmcs[VMCS_RO_EXIT_REASON] = reason;
    v->vmcs[VMCS_RO_EXIT_QUALIFIC] = qual;
}

static void clear_exit(struct hvfh_vcpu *v)
{
    static const uint32_t ro[] = {VMCS_RO_EXIT_REASON,
                                  VMCS_RO_EXIT_QUALIFIC,
                                  VMCS_GUEST_PHYSICAL_ADDRESS,
                                  VMCS_RO_GUEST_LIN_ADDR,
                                  VMCS_RO_VMEXIT_INSTR_LEN,
                                  VMCS_RO_VMX_INSTR_INFO,
                                  VMCS_RO_VMEXIT_IRQ_INFO,
                                  VMCS_RO_VMEXIT_IRQ_ERROR,
                                  VMCS_RO_IDT_VECTOR_INFO,
                                  VMCS_RO_IDT_VECTOR_ERROR,
                                  VMCS_RO_IO_RCX,
                                  VMCS_RO_IO_RSI,
                                  VMCS_RO_IO_RDI,
                                  VMCS_RO_IO_RIP,
                                  VMCS_RO_INSTR_ERROR};
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
        v->vmcs[ro[i]] = 0;
}

/* Completes and so discards what KVM left pending (I/O, MMIO, MSR), with
 * `refill` giving IN data that leaves guest memory as it is; the caller
 * then puts the registers back. */
static void discard_pending(struct hvfh_vcpu *v)
{
    struct kvm_run *run = v->run;
    uint32_t why = run->exit_reason;
    /* OUT and OUTS leave nothing pending here (measured: KVM emulated
     * them, RIP already moved; the next KVM_RUN moves nothing) */
    if (why == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT)
        return;
    if (why != KVM_EXIT_IO && why != KVM_EXIT_MMIO &&
        why != KVM_EXIT_X86_RDMSR && why != KVM_EXIT_X86_WRMSR)
        return;
    for (int i = 0; i < 16; i++) {
        if (run->exit_reason == KVM_EXIT_IO &&
            run->io.direction == KVM_EXIT_IO_IN) {
            /* INS writes the data to memory at completion: give it the
             * bytes already there */
            uint8_t *d = (uint8_t *)run + run->io.data_offset;
            uint64_t di = v->regs.rdi;
            int step = (v->regs.rflags & (1u << 10)) ? -1 : 1;
            for (uint32_t k = 0; k < run->io.count; k++)
                hvfh_read_linear(v,
                                 v->sregs.es.base + di +
                                     (uint64_t)(step * (int)k * run->io.size),
                                 d + k * run->io.size, run->io.size);
        } else if (run->exit_reason == KVM_EXIT_X86_RDMSR) {
            run->msr.error = 0;
            run->msr.data = (v->regs.rdx << 32) | (uint32_t)v->regs.rax;
        } else if (run->exit_reason == KVM_EXIT_X86_WRMSR) {
            run->msr.error = 0;
        }
        __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        run->kvm_dirty_regs = 0;
        int rc = kvm_run(v);
        if (rc < 0 && errno == EINTR)
            break;
        if (rc < 0)
            break;
    }
    rearm(v);
}

static int put_back(struct hvfh_vcpu *v, const struct kvm_regs *pre)
{
    discard_pending(v);
    v->regs = *pre;
    v->regs_valid = 1;
    v->regs_dirty = 1; /* to KVM at the next entry */
    return 0;
}

static int is_io(const struct hvfh_insn *in, int dir_in, int string)
{
    if (in->map)
        return 0;
    uint8_t op = in->op;
    if (string)
        return dir_in ? (op == 0x6c || op == 0x6d) : (op == 0x6e || op == 0x6f);
    return dir_in ? (op == 0xe4 || op == 0xe5 || op == 0xec || op == 0xed)
                  : (op == 0xe6 || op == 0xe7 || op == 0xee || op == 0xef);
}

static int io_size(const struct hvfh_insn *in)
{
    if (!(in->op & 1))
        return 1;
    return in->opsize == 2 ? 2 : 4;
}

static int io_match(const struct hvfh_insn *in, int dir_in, int string,
                    const struct kvm_run *run)
{
    if (!is_io(in, dir_in, string) || io_size(in) != run->io.size)
        return 0;
    if (!string && (in->op & 0xf8) == 0xe0 && in->imm != run->io.port)
        return 0;
    return 1;
}

static hv_return_t exit_io(struct hvfh_vcpu *v)
{
    struct kvm_run *run = v->run;
    int in_dir = run->io.direction == KVM_EXIT_IO_IN;
    /* put_back() may run KVM again (completing an IN), which overwrites
     * kvm_run's exit union (a single-step exit, with the window asked for):
     * what the qualification needs is taken now */
    const unsigned size = run->io.size, port = run->io.port;
    struct hvfh_insn in;
    struct kvm_regs pre = v->regs;
    int found = 0, string = 0;
    if (in_dir) {
        /* measured: IN, INS and REP INS exit before executing */
        if (!hvfh_decode(v, v->regs.rip, &in, 0) &&
            (io_match(&in, 1, 0, run) || io_match(&in, 1, 1, run))) {
            found = 1;
            string = is_io(&in, 1, 1);
        }
    } else {
        /* measured: REP OUTS exits once per element with RIP at the
         * instruction and RSI/RCX already stepped; OUT and OUTS exit
         * after RIP moved past the instruction */
        if (!hvfh_decode(v, v->regs.rip, &in, 0) && in.rep &&
            io_match(&in, 0, 1, run)) {
            int step = (v->regs.rflags & (1u << 10)) ? -1 : 1;
            uint64_t n = run->io.count, m = hvfh_amask(in.addrsize);
            uint64_t rsi =
                v->regs.rsi - (uint64_t)(step * (int64_t)n * run->io.size);
            uint8_t last[4];
            uint64_t la =
                hvfh_seg_base(v, in.seg < 0 ? 3 : in.seg) +
                ((rsi + (n - 1) * (uint64_t)(step * run->io.size)) & m);
            const uint8_t *d = (uint8_t *)run + run->io.data_offset;
            /* the data is what memory holds there, unless this is an OUT
             * that happens to precede a REP OUTS */
            if (!hvfh_read_linear(v, la, last, run->io.size) &&
                !memcmp(last, d + (n - 1) * run->io.size, run->io.size)) {
                pre.rsi = (v->regs.rsi & ~m) | (rsi & m);
                pre.rcx = (v->regs.rcx & ~m) | ((v->regs.rcx + n) & m);
                found = string = 1;
            }
        }
        for (int k = 1; !found && k <= 15; k++) {
            struct hvfh_insn c;
            if (hvfh_decode(v, v->regs.rip - (uint64_t)k, &c, 0) ||
                c.len != k || c.rep)
                continue;
            if (io_match(&c, 0, 0, run) || io_match(&c, 0, 1, run)) {
                in = c;
                found = 1;
                string = is_io(&c, 0, 1);
                pre.rip = v->regs.rip - (uint64_t)k;
                /* OUTS: a segment or address-size override before it
                 * belongs to it (they change what it reads) */
                while (string && k < 15) {
                    uint8_t p = 0;
                    struct hvfh_insn w;
                    if (hvfh_read_linear(v, v->sregs.cs.base + pre.rip - 1, &p,
                                         1) ||
                        !(p == 0x26 || p == 0x2e || p == 0x36 || p == 0x3e ||
                          p == 0x64 || p == 0x65 || p == 0x67) ||
                        hvfh_decode(v, pre.rip - 1, &w, 0) || w.len != k + 1 ||
                        !io_match(&w, 0, 1, run))
                        break;
                    in = w;
                    k++;
                    pre.rip--;
                }
                if (string) {
                    int step = (v->regs.rflags & (1u << 10)) ? -1 : 1;
                    uint64_t m = hvfh_amask(c.addrsize);
                    uint64_t rsi =
                        v->regs.rsi - (uint64_t)(step * run->io.size);
                    pre.rsi = (v->regs.rsi & ~m) | (rsi & m);
                }
            }
        }
    }
    if (!found) {
        fprintf(stderr,
                "hvf_host: cannot find the I/O instruction of port "
                "0x%x at rip 0x%llx\n",
                run->io.port, (unsigned long long)v->regs.rip);
        return HV_ERROR;
    }
    if (put_back(v, &pre))
        return fail("putting the registers back", errno);
    uint64_t q = (uint64_t)(size - 1) | (uint64_t)in_dir << 3 |
                 (uint64_t)string << 4 | (uint64_t)(in.rep != 0) << 5 |
                 (uint64_t)((in.op & 0xf8) == 0xe0) << 6 | (uint64_t)port << 16;
    set_exit(v, VMX_REASON_IO, q);
    v->vmcs[VMCS_RO_VMEXIT_INSTR_LEN] = (uint64_t)in.len;
    v->vmcs[VMCS_RO_IO_RIP] = 0;
    if (string) {
        int seg = in_dir ? 0 : (in.seg < 0 ? 3 : in.seg);
        uint64_t asz = in.addrsize == 2 ? 0 : in.addrsize == 4 ? 1 : 2;
        v->vmcs[VMCS_RO_VMX_INSTR_INFO] = asz << 7 | (uint64_t)seg << 15;
        uint64_t off = in_dir ? pre.rdi : pre.rsi;
        v->vmcs[VMCS_RO_GUEST_LIN_ADDR] =
            hvfh_seg_base(v, seg) + (off & hvfh_amask(in.addrsize));
    }
    return HV_SUCCESS;
}

static hv_return_t exit_mmio(struct hvfh_vcpu *v)
{
    struct kvm_run *run = v->run;
    uint64_t gpa = run->mmio.phys_addr;
    const int is_write = run->mmio.is_write; /* put_back() reruns KVM */
    struct kvm_regs pre = v->regs;
    struct hvfh_insn in;
    int have = 0, fetch = 0;
    if (run->mmio.is_write) {
        if (hvfh_mmio_write_start(v, gpa, run->mmio.len, &pre, &in)) {
            fprintf(stderr,
                    "hvf_host: cannot find the instruction that "
                    "wrote MMIO 0x%llx before rip 0x%llx\n",
                    (unsigned long long)gpa, (unsigned long long)v->regs.rip);
            return HV_ERROR;
        }
        have = 1;
    } else {
        /* measured: reads exit before executing */
        uint64_t g;
        if (!hvfh_translate(v, v->sregs.cs.base + v->regs.rip, &g) &&
            (g >> 12) == (gpa >> 12))
            fetch = 1;
        else
            have = !hvfh_decode(v, v->regs.rip, &in, 0);
    }
    if (!run->mmio.is_write && have && !in.map &&
        (in.op == 0xa4 || in.op == 0xa5) && run->mmio.len <= 8) {
        /* MOVS from MMIO: completing the read writes its data to ES:RDI;
         * make that the bytes already there */
        uint64_t la = hvfh_seg_base(v, 0) + (pre.rdi & hvfh_amask(in.addrsize));
        hvfh_read_linear(v, la, run->mmio.data, run->mmio.len);
    }
    if (put_back(v, &pre))
        return fail("putting the registers back", errno);
    uint64_t rights = hvfh_gpa_rights(gpa) & 7;
    uint64_t q = (is_write ? 2u : fetch ? 4u : 1u) | rights << 3;
    uint64_t gla = 0;
    if (fetch) {
        gla = v->sregs.cs.base + pre.rip;
    } else if (have && (in.mem || (!in.map && in.op >= 0xa0 && in.op <= 0xa7) ||
                        (!in.map && in.op >= 0xaa && in.op <= 0xaf))) {
        if (in.mem)
            gla = hvfh_seg_base(v, in.seg < 0 ? 3 : in.seg) + in.ea;
        else if (in.op >= 0xa0 && in.op <= 0xa3)
            gla = hvfh_seg_base(v, in.seg < 0 ? 3 : in.seg) + in.imm;
        else if (is_write || in.op == 0xae || in.op == 0xaf)
            gla = hvfh_seg_base(v, 0) + (pre.rdi & hvfh_amask(in.addrsize));
        else
            gla = hvfh_seg_base(v, in.seg < 0 ? 3 : in.seg) +
                  (pre.rsi & hvfh_amask(in.addrsize));
    } else {
        have = 0;
    }
    if (have || fetch)
        q |= 3u << 7; /* linear address valid, access to a translation */
    set_exit(v, VMX_REASON_EPT_VIOLATION, q);
    v->vmcs[VMCS_GUEST_PHYSICAL_ADDRESS] = gpa;
    v->vmcs[VMCS_RO_GUEST_LIN_ADDR] = gla;
    return HV_SUCCESS;
}

static hv_return_t exit_msr(struct hvfh_vcpu *v, int write)
{
    /* measured: RIP at the RDMSR/WRMSR; RCX and EDX:EAX are the guest's */
    struct kvm_regs pre = v->regs;
    if (put_back(v, &pre))
        return fail("putting the registers back", errno);
    set_exit(v, write ? VMX_REASON_WRMSR : VMX_REASON_RDMSR, 0);
    v->vmcs[VMCS_RO_VMEXIT_INSTR_LEN] = 2;
    return HV_SUCCESS;
}

static hv_return_t after_exit(struct hvfh_vcpu *v, hv_return_t r);

static int inject(struct hvfh_vcpu *v)
{
    uint64_t info = v->vmcs[VMCS_CTRL_VMENTRY_IRQ_INFO];
    if (!(info & IRQ_INFO_VALID))
        return 0;
    unsigned type = (info >> 8) & 7, vec = info & 0xff;
    if (type == 0) {
        struct kvm_interrupt irq = {.irq = vec};
        return ioctl(v->fd, KVM_INTERRUPT, &irq) ? -errno : 0;
    }
    if (type == 2)
        return ioctl(v->fd, KVM_NMI) ? -errno : 0;
    struct kvm_vcpu_events e;
    if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &e))
        return -errno;
    e.flags = 0;
    if (type == 4) { /* software interrupt (INT n) */
        e.interrupt.injected = 1;
        e.interrupt.nr = (uint8_t)vec;
        e.interrupt.soft = 1;
    } else { /* hardware or software exception */
        e.exception.injected = 1;
        e.exception.nr = (uint8_t)vec;
        e.exception.has_error_code = (info & IRQ_INFO_ERROR_VALID) != 0;
        e.exception.error_code = (uint32_t)v->vmcs[VMCS_CTRL_VMENTRY_EXC_ERROR];
    }
    return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &e) ? -errno : 0;
}

/* VMX's HLT exit, RIP on the HLT (HLT exiting comes before the
 * instruction executes). */
static hv_return_t exit_hlt_here(struct hvfh_vcpu *v)
{
    set_exit(v, VMX_REASON_HLT, 0);
    v->vmcs[VMCS_RO_VMEXIT_INSTR_LEN] = 1;
    return after_exit(v, HV_SUCCESS);
}

static hv_return_t after_exit(struct hvfh_vcpu *v, hv_return_t r)
{
    if (v->stepping) {
        hvfh_single_step(v, 0);
        v->stepping = 0;
    }
    /* VM exit clears the entry interruption's valid bit and saves LMA into
     * the IA-32e-mode entry control */
    v->vmcs[VMCS_CTRL_VMENTRY_IRQ_INFO] &= ~(uint64_t)IRQ_INFO_VALID;
    if (!hvfh_load_sregs(v)) {
        uint64_t *e = &v->vmcs[VMCS_CTRL_VMENTRY_CONTROLS];
        *e = (v->sregs.efer & (1u << 10))
                 ? (*e | VMENTRY_GUEST_IA32E)
                 : (*e & ~(uint64_t)VMENTRY_GUEST_IA32E);
    }
    v->exits++;
    static int trace = -1;
    if (trace < 0)
        trace = getenv("HVF_HOST_TRACE") != NULL;
    if (trace)
        fprintf(stderr,
                "hvf_host: vcpu %u exit %#llx qual %#llx gpa %#llx rip %#llx "
                "ret %#x%s\n",
                v->id, (unsigned long long)v->vmcs[VMCS_RO_EXIT_REASON],
                (unsigned long long)v->vmcs[VMCS_RO_EXIT_QUALIFIC],
                (unsigned long long)v->vmcs[VMCS_GUEST_PHYSICAL_ADDRESS],
                (unsigned long long)v->regs.rip, (unsigned)r,
                v->stepping ? " (stepping)" : "");
    return r;
}

hv_return_t hvfh_run(struct hvfh_vcpu *v)
{
    if (getenv("HVF_HOST_TRACE") && !hvfh_load_regs(v))
        fprintf(stderr, "hvf_host: vcpu %u run at rip %#llx rax %#llx\n", v->id,
                (unsigned long long)v->regs.rip,
                (unsigned long long)v->regs.rax);
    clear_exit(v);
    /* controls outside what hv_vmx_read_capability() allows: the entry
     * fails as VMLAUNCH/VMRESUME would (VM-instruction error 7) */
    static const struct {
        uint32_t field;
        hv_vmx_capability_t cap;
    } ctls[] = {{VMCS_CTRL_PIN_BASED, HV_VMX_CAP_PINBASED},
                {VMCS_CTRL_CPU_BASED, HV_VMX_CAP_PROCBASED},
                {VMCS_CTRL_CPU_BASED2, HV_VMX_CAP_PROCBASED2},
                {VMCS_CTRL_VMENTRY_CONTROLS, HV_VMX_CAP_ENTRY},
                {VMCS_CTRL_VMEXIT_CONTROLS, HV_VMX_CAP_EXIT}};
    for (size_t i = 0; i < sizeof(ctls) / sizeof(ctls[0]); i++) {
        uint64_t cap = 0, c = v->vmcs[ctls[i].field];
        hv_vmx_read_capability(ctls[i].cap, &cap);
        if ((c & (uint32_t)cap) != (uint32_t)cap || (c & ~(cap >> 32))) {
            v->vmcs[VMCS_RO_INSTR_ERROR] = 7;
            fprintf(stderr,
                    "hvf_host: VMCS control 0x%x = 0x%llx outside the "
                    "capability 0x%llx\n",
                    ctls[i].field, (unsigned long long)c,
                    (unsigned long long)cap);
            return HV_ERROR;
        }
    }
    int err = 0;
    if (hvfh_cpuid_step(v, &err))
        return err ? HV_ERROR : HV_SUCCESS;
    if (atomic_exchange(&v->kick, 0)) {
        rearm(v);
        set_exit(v, VMX_REASON_IRQ, 0);
        return HV_SUCCESS;
    }
    int bad = hvfh_entry_check(v);
    if (bad < 0)
        return fail("reading the guest state for VM entry", errno);
    if (bad) {
        set_exit(v, 0x80000000u | VMX_REASON_VMENTRY_GUEST, 0);
        return HV_SUCCESS;
    }
    uint64_t info = v->vmcs[VMCS_CTRL_VMENTRY_IRQ_INFO];
    if (v->vmcs[VMCS_GUEST_ACTIVITY_STATE] == 1) { /* HLT */
        if (info & IRQ_INFO_VALID) {
            v->vmcs[VMCS_GUEST_ACTIVITY_STATE] = 0;
        } else {
            /* halted until an interrupt: here only hv_vcpu_interrupt */
            while (!atomic_exchange(&v->kick, 0))
                poll(NULL, 0, 5);
            rearm(v);
            set_exit(v, VMX_REASON_IRQ, 0);
            return HV_SUCCESS;
        }
    }
    int wnd = (v->vmcs[VMCS_CTRL_CPU_BASED] & CPU_BASED_IRQ_WND) != 0;
    if (v->regs_valid && (v->regs.rflags & (1u << 9)))
        hvfh_slice_reset(v); /* IF seen set */
    if (wnd && !(info & IRQ_INFO_VALID) && hvfh_interruptible(v)) {
        set_exit(v, VMX_REASON_IRQ_WND, 0);
        return after_exit(v, HV_SUCCESS);
    }
    /* the guest will be stepped until it opens the window (below): a HLT
     * on the way exits before it runs, as HLT exiting does (KVM would step
     * over it, the HLT never reported) */
    if (wnd && !(info & IRQ_INFO_VALID) && hvfh_at_hlt(v))
        return exit_hlt_here(v);
    /* an IRETQ is done here: KVM on PVM runs it without the single-step
     * trap after it, so the window it opens would be missed */
    if (wnd && !(info & IRQ_INFO_VALID) && hvfh_step_iret(v) > 0) {
        if (hvfh_interruptible(v)) {
            set_exit(v, VMX_REASON_IRQ_WND, 0);
            return after_exit(v, HV_SUCCESS);
        }
        if (hvfh_at_hlt(v))
            return exit_hlt_here(v);
    }
    /* nor stepped across the delivery of an event injected now: KVM steps
     * with RFLAGS.TF, which the delivery would push into the handler's
     * frame for its IRET to give back to the guest (which then traps on its
     * own, after the window was missed). Delivered here where window.c can;
     * the window then opens at once (a trap gate) or is stepped for from
     * the handler's first instruction */
    if (wnd && (info & IRQ_INFO_VALID) && hvfh_deliver(v, info)) {
        v->vmcs[VMCS_CTRL_VMENTRY_IRQ_INFO] &= ~(uint64_t)IRQ_INFO_VALID;
        info = 0;
        if (hvfh_interruptible(v)) {
            set_exit(v, VMX_REASON_IRQ_WND, 0);
            return after_exit(v, HV_SUCCESS);
        }
        if (hvfh_at_hlt(v))
            return exit_hlt_here(v);
    }
    hvfh_tsc_apply(v);
    int fr;
    if (v->sync_regs) {
        /* the registers go in with KVM_RUN */
        fr = hvfh_flush_sregs(v);
        v->run->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
        if (!fr && v->regs_dirty) {
            v->run->s.regs.regs = v->regs;
            v->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
            v->regs_dirty = 0;
        }
    } else {
        fr = hvfh_flush_state(v);
    }
    if (fr) {
        int e = errno;
        fprintf(
            stderr,
            "hvf_host: KVM refuses cr0 0x%llx cr3 0x%llx cr4 0x%llx "
            "efer 0x%llx rip 0x%llx rflags 0x%llx\n",
            (unsigned long long)v->sregs.cr0, (unsigned long long)v->sregs.cr3,
            (unsigned long long)v->sregs.cr4, (unsigned long long)v->sregs.efer,
            (unsigned long long)v->regs.rip,
            (unsigned long long)v->regs.rflags);
        return fail("writing the guest state to KVM", e);
    }
    int ir = inject(v);
    if (ir)
        return fail("injecting the VM-entry event", -ir);
    struct kvm_run *run = v->run;
    if (wnd && !v->stepping) {
        /* KVM on PVM does not report the window opening: step the guest
         * until it can take an interrupt (window.c). Upstream KVM sets
         * TF only while RIP is where it was at KVM_SET_GUEST_DEBUG: the
         * registers go to KVM first, not with KVM_RUN (a RIP moved since,
         * by the backend or by hvfh_deliver(), would run unstepped; this
         * PVM host steps either way) */
        if (v->sync_regs && (v->run->kvm_dirty_regs & KVM_SYNC_X86_REGS)) {
            if (ioctl(v->fd, KVM_SET_REGS, &v->run->s.regs.regs))
                return fail("writing the registers to KVM", errno);
            v->run->kvm_dirty_regs &= ~(uint64_t)KVM_SYNC_X86_REGS;
        }
        hvfh_single_step(v, 1);
        v->stepping = 1;
    }
    for (;;) {
        run->request_interrupt_window = (uint8_t)wnd;
        int rc = kvm_run(v);
        int e = errno;
        v->entered = 1;
        hvfh_invalidate(v);
        if (rc < 0 && e == EINTR) {
            if (atomic_exchange(&v->kick, 0)) {
                rearm(v);
                set_exit(v, VMX_REASON_IRQ, 0);
                return after_exit(v, HV_SUCCESS);
            }
            rearm(v); /* mem.c's pause, or someone else's signal */
            continue;
        }
        if (rc < 0)
            return fail("KVM_RUN", e);
        if (hvfh_load_regs(v) || hvfh_load_sregs(v))
            return fail("reading the guest state after the exit", errno);
        switch (run->exit_reason) {
        case KVM_EXIT_IO: return after_exit(v, exit_io(v));
        case KVM_EXIT_MMIO:
            /* memory that is mapped as the access needs: the vCPU ran into
             * the gap while mem.c replaced memslots; KVM completes it on
             * that memory (a read gets its bytes, a write already ran) */
            if (run->mmio.len <= 8 &&
                !hvfh_ram_access(run->mmio.phys_addr, run->mmio.data,
                                 run->mmio.len, run->mmio.is_write))
                continue;
            return after_exit(v, exit_mmio(v));
        case KVM_EXIT_X86_RDMSR: return after_exit(v, exit_msr(v, 0));
        case KVM_EXIT_X86_WRMSR: return after_exit(v, exit_msr(v, 1));
        case KVM_EXIT_HLT: {
            /* KVM has stepped over the HLT: VMX exits at it */
            uint8_t b = 0;
            struct kvm_regs pre = v->regs;
            pre.rip -= 1;
            if (hvfh_read_linear(v, v->sregs.cs.base + pre.rip, &b, 1) ||
                b != 0xf4) {
                fprintf(stderr, "hvf_host: rip 0x%llx: ",
                        (unsigned long long)v->regs.rip);
                return fail("KVM's HLT exit does not follow a HLT", 0);
            }
            if (put_back(v, &pre))
                return fail("putting the registers back", errno);
            set_exit(v, VMX_REASON_HLT, 0);
            v->vmcs[VMCS_RO_VMEXIT_INSTR_LEN] = 1;
            return after_exit(v, HV_SUCCESS);
        }
        case KVM_EXIT_DEBUG:
            if (!v->stepping)
                return after_exit(v, fail("unexpected KVM_EXIT_DEBUG", 0));
            if (!hvfh_interruptible(v)) {
                if (hvfh_at_hlt(v)) /* the next step would run it */
                    return exit_hlt_here(v);
                int st = hvfh_step_iret(v);
                if (st < 0)
                    return after_exit(v, fail("stepping over IRETQ", errno));
                if (st == 0)
                    continue;
                /* the registers to KVM, and stepping from the new RIP */
                if (ioctl(v->fd, KVM_SET_REGS, &v->regs))
                    return after_exit(v, fail("writing the registers", errno));
                v->regs_dirty = 0;
                if (v->sync_regs) {
                    run->s.regs.regs = v->regs;
                    run->kvm_dirty_regs = 0;
                }
                hvfh_single_step(v, 1);
                if (!hvfh_interruptible(v)) {
                    if (hvfh_at_hlt(v))
                        return exit_hlt_here(v);
                    continue;
                }
            }
            set_exit(v, VMX_REASON_IRQ_WND, 0);
            return after_exit(v, HV_SUCCESS);
        case KVM_EXIT_IRQ_WINDOW_OPEN:
            set_exit(v, VMX_REASON_IRQ_WND, 0);
            return after_exit(v, HV_SUCCESS);
        case KVM_EXIT_SHUTDOWN:
            set_exit(v, VMX_REASON_TRIPLE_FAULT, 0);
            return after_exit(v, HV_SUCCESS);
        case KVM_EXIT_INTR: continue;
        case KVM_EXIT_INTERNAL_ERROR: {
            /* measured: a fetch from a page without memory is an
             * emulation failure, nothing executed */
            uint64_t g;
            uint64_t la = v->sregs.cs.base + v->regs.rip;
            if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
                !hvfh_translate(v, la, &g) &&
                !(hvfh_gpa_rights(g) & HV_MEMORY_READ)) {
                set_exit(v, VMX_REASON_EPT_VIOLATION,
                         4u | (hvfh_gpa_rights(g) & 7) << 3 | 3u << 7);
                v->vmcs[VMCS_GUEST_PHYSICAL_ADDRESS] = g;
                v->vmcs[VMCS_RO_GUEST_LIN_ADDR] = la;
                return after_exit(v, HV_SUCCESS);
            }
            fprintf(stderr, "hvf_host: KVM internal error %u at rip 0x%llx\n",
                    run->internal.suberror, (unsigned long long)v->regs.rip);
            return after_exit(v, HV_ERROR);
        }
        default:
            fprintf(stderr, "hvf_host: KVM exit %u has no VMX counterpart\n",
                    run->exit_reason);
            return after_exit(v, HV_ERROR);
        }
    }
}
