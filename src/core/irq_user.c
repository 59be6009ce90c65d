/* The library's userspace interrupt controllers in the core (branch
 * irq17): a VM created with HVC_VM_USER_IRQCHIP (or on a backend without
 * in-kernel chips) gets the chips of src/arch/x86/irqchip.h, a thread that
 * runs their timers, and two hooks in the vCPU run loop.
 *
 * Before each entry (hvi_uirq_enter), the runner takes from its LAPIC
 * what it would take in hardware: an INIT resets the LAPIC and parks the
 * vCPU until a SIPI, which starts it in real mode at the vector's page; an
 * NMI is injected at once; an interrupt when the backend says the guest
 * can take one, else the backend is asked for an exit when it can (the
 * interrupt window). After each exit (hvi_uirq_exit), HLT parks the vCPU
 * in the core until its LAPIC has something for it (an interrupt only with
 * RFLAGS.IF set), a kick or a pause; the chips' ports, pages and MSRs are
 * served here before any registered handler.
 *
 * A vCPU parked in HLT or waiting for its SIPI counts as inactive, as one
 * parked by a pause does, so hvc_vm_pause() does not wait for it.
 *
 * Locks (internal.h, 7 and 8): the chips' lock, taken inside the
 * hvi_irqchip_* calls, and tlock, the timer thread's. The chips' callbacks
 * (wake, timer_changed) run under the chips' lock and take only tlock, or
 * no lock at all. */
#include "internal.h"
#include "tsc_internal.h"

#include "../arch/x86/arch_state.h"
#include "../arch/x86/irqchip.h"
#include "../os/os.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RFLAGS_IF (1ull << 9)
#define MSR_IA32_TSC 0x10u

struct hvi_uirq_cpu {
    _Atomic(hvc_vcpu *) vcpu; /* cleared before the LAPIC goes */
    atomic_int halted;        /* the runner waits in HLT */
    atomic_int resume_halted; /* restored in HLT: wait before entering */
};

struct hvi_uirq {
    hvc_vm *vm;
    struct hvi_irqchip *chip;
    struct hvi_uirq_cpu *cpu; /* max_vcpus entries */
    atomic_uint tsc_khz;      /* the guest TSC rate, once known */
    /* The timer thread. */
    pthread_mutex_t tlock;
    pthread_cond_t tcond;
    bool changed, stop, running;
    pthread_t thread;
};

static uint64_t now_ns(void *opaque)
{
    (void)opaque;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Under the chips' lock: take the vCPU out of the guest or out of its
 * wait. Its own runner needs neither: it looks before the next entry. */
static void wake(void *opaque, uint32_t cpu)
{
    struct hvi_uirq *u = opaque;
    hvc_vcpu *v = atomic_load(&u->cpu[cpu].vcpu);
    if (!v)
        return;
    hvi_os_wake_post(&v->parked);
    /* A runner waiting in HLT (or for its SIPI) reads its LAPIC again
     * after the post: a kick would only cost it an empty entry later. */
    if (atomic_load(&u->cpu[cpu].halted))
        return;
    if (atomic_load(&v->state) != HVI_VCPU_IDLE &&
        pthread_equal(v->runner, pthread_self()))
        return;
    hvi_vcpu_interrupt(v);
}

static void timer_changed(void *opaque)
{
    struct hvi_uirq *u = opaque;
    pthread_mutex_lock(&u->tlock);
    u->changed = true;
    pthread_cond_signal(&u->tcond);
    pthread_mutex_unlock(&u->tlock);
}

static void *timer_loop(void *arg)
{
    struct hvi_uirq *u = arg;
    for (;;) {
        hvi_irqchip_run_timers(u->chip, now_ns(NULL));
        uint64_t next = hvi_irqchip_next_deadline(u->chip);
        pthread_mutex_lock(&u->tlock);
        if (u->stop) {
            pthread_mutex_unlock(&u->tlock);
            return NULL;
        }
        if (!u->changed) {
            if (next == UINT64_MAX) {
                pthread_cond_wait(&u->tcond, &u->tlock);
            } else {
                struct timespec ts = {(time_t)(next / 1000000000u),
                                      (long)(next % 1000000000u)};
                pthread_cond_timedwait(&u->tcond, &u->tlock, &ts);
            }
        }
        u->changed = false;
        pthread_mutex_unlock(&u->tlock);
    }
}

int hvi_uirq_create(hvc_vm *vm)
{
    if (!(vm->opts.flags & HVC_VM_USER_IRQCHIP))
        return 0;
    struct hvi_uirq *u = calloc(1, sizeof(*u));
    struct hvi_uirq_cpu *cpu = calloc(vm->opts.max_vcpus, sizeof(*cpu));
    if (!u || !cpu) {
        free(u);
        free(cpu);
        return hvi_error(-ENOMEM, "out of memory creating the interrupt "
                                  "controllers");
    }
    u->vm = vm;
    u->cpu = cpu;
    struct hvi_irqchip_host host = {u, now_ns, wake, timer_changed};
    int r = hvi_irqchip_create(&host, vm->opts.max_vcpus, &u->chip);
    if (r < 0) {
        free(cpu);
        free(u);
        return r;
    }
    pthread_mutex_init(&u->tlock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&u->tcond, &ca);
    pthread_condattr_destroy(&ca);
    if ((r = pthread_create(&u->thread, NULL, timer_loop, u)) != 0) {
        r = hvi_error(-r, "starting the interrupt controllers' timer "
                          "thread: %s",
                      hvc_strerror(-r));
        pthread_cond_destroy(&u->tcond);
        pthread_mutex_destroy(&u->tlock);
        hvi_irqchip_destroy(u->chip);
        free(cpu);
        free(u);
        return r;
    }
    u->running = true;
    vm->uirq = u;
    return 0;
}

void hvi_uirq_destroy(hvc_vm *vm)
{
    struct hvi_uirq *u = vm->uirq;
    if (!u)
        return;
    pthread_mutex_lock(&u->tlock);
    u->stop = true;
    pthread_cond_signal(&u->tcond);
    pthread_mutex_unlock(&u->tlock);
    if (u->running)
        pthread_join(u->thread, NULL);
    pthread_cond_destroy(&u->tcond);
    pthread_mutex_destroy(&u->tlock);
    hvi_irqchip_destroy(u->chip);
    free(u->cpu);
    free(u);
    vm->uirq = NULL;
}

/* The backend's copy of IA32_APIC_BASE follows the LAPIC's: KVM without
 * its LAPIC keeps one (0 out of reset) and derives CPUID.1:EDX.APIC from
 * its enable bit, so a guest would see no APIC at all. */
static int mirror_apic_base(hvc_vcpu *v)
{
    hvc_reg id = HVC_X86_APIC_BASE;
    uint64_t base = hvi_irqchip_apic_base(v->vm->uirq->chip, v->id);
    return hvi_bk_set_regs(v, &id, &base, 1);
}

int hvi_uirq_vcpu_created(hvc_vcpu *vcpu)
{
    struct hvi_uirq *u = vcpu->vm->uirq;
    if (!u)
        return 0;
    int r = hvi_irqchip_add_cpu(u->chip, vcpu->id);
    if (r == 0 && (r = mirror_apic_base(vcpu)) < 0)
        hvi_irqchip_remove_cpu(u->chip, vcpu->id);
    if (r == 0)
        atomic_store(&u->cpu[vcpu->id].vcpu, vcpu);
    return r;
}

void hvi_uirq_vcpu_destroyed(hvc_vcpu *vcpu)
{
    struct hvi_uirq *u = vcpu->vm->uirq;
    if (!u)
        return;
    atomic_store(&u->cpu[vcpu->id].vcpu, NULL);
    /* Takes the chips' lock: no callback still holds the pointer after. */
    hvi_irqchip_remove_cpu(u->chip, vcpu->id);
}

void hvi_uirq_started(hvc_vcpu *vcpu)
{
    if (vcpu->vm->uirq)
        hvi_irqchip_set_started(vcpu->vm->uirq->chip, vcpu->id);
}

/* Whether what the LAPIC holds ends a wait: in HLT, an interrupt only with
 * IF set; waiting for a SIPI, only INIT or SIPI (pending says nothing
 * else then). */
static bool woken(struct hvi_uirq *u, uint32_t cpu, bool intr)
{
    int k = hvi_irqchip_pending(u->chip, cpu);
    return k != HVI_IRQ_NONE && (k != HVI_IRQ_INTR || intr);
}

/* Parks the runner until its LAPIC has something, a kick or a pause. */
static void halt(hvc_vcpu *v, bool intr)
{
    hvc_vm *vm = v->vm;
    struct hvi_uirq *u = vm->uirq;
    if (woken(u, v->id, intr))
        return;
    hvi_os_wake_drain(&v->parked);
    /* hvi_vcpu_lock_vm, not a plain lock: a pause that holds vm->lock may
     * be waiting for this (thread-bound) vCPU to serve a forwarded call, a
     * save reading its state (hvf, --cpus 2, deadlocked here) */
    hvi_vcpu_lock_vm(v);
    atomic_fetch_sub(&vm->active, 1);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    atomic_store(&u->cpu[v->id].halted, 1);
    while (!atomic_load(&v->kick_pending) &&
           atomic_load(&vm->pause_depth) == 0 && !woken(u, v->id, intr))
        hvi_os_wake_wait(&v->parked);
    atomic_store(&u->cpu[v->id].halted, 0);
    hvi_vcpu_lock_vm(v);
    atomic_fetch_add(&vm->active, 1);
    pthread_mutex_unlock(&vm->lock);
}

/* A SIPI: real mode at vector << 12, as the AP's reset state with CS
 * pointing at the page. */
static int start_at(hvc_vcpu *v, uint8_t vector)
{
    const hvc_backend_ops *ops = v->vm->ops;
    hvc_x86_segment cs;
    int r = ops->vcpu_get_segment(v->priv, HVC_X86_CS, &cs);
    if (r < 0)
        return r;
    cs.l = 0; /* valid in every mode, so the registers below may change */
    if ((r = ops->vcpu_set_segment(v->priv, HVC_X86_CS, &cs)) < 0)
        return r;
    const hvc_reg ids[] = {HVC_X86_CR4,    HVC_X86_EFER, HVC_X86_CR0,
                           HVC_X86_CR3,    HVC_X86_RIP,  HVC_X86_RSP,
                           HVC_X86_RFLAGS};
    const uint64_t vals[] = {0, 0, 0x60000010u, 0, 0, 0, 2};
    if ((r = ops->vcpu_set_regs(v->priv, ids, vals, 7)) < 0)
        return r;
    hvc_x86_segment s = {.base = (uint64_t)vector << 12,
                         .limit = 0xffff,
                         .selector = (uint16_t)(vector << 8),
                         .type = 0xb,
                         .present = 1,
                         .s = 1};
    if ((r = ops->vcpu_set_segment(v->priv, HVC_X86_CS, &s)) < 0)
        return r;
    static const hvc_reg data[] = {HVC_X86_DS, HVC_X86_ES, HVC_X86_FS,
                                   HVC_X86_GS, HVC_X86_SS};
    s.base = 0;
    s.selector = 0;
    s.type = 3;
    for (int i = 0; i < 5; i++)
        if ((r = ops->vcpu_set_segment(v->priv, data[i], &s)) < 0)
            return r;
    return 0;
}

static int hlt_exit(hvc_vcpu *v)
{
    hvc_reg id = HVC_X86_RFLAGS;
    uint64_t rflags = RFLAGS_IF;
    int r = v->vm->ops->vcpu_get_regs(v->priv, &id, &rflags, 1);
    if (r < 0)
        return r;
    halt(v, rflags & RFLAGS_IF);
    return 1;
}

int hvi_uirq_enter(hvc_vcpu *v)
{
    struct hvi_uirq *u = v->vm->uirq;
    const hvc_backend_ops *ops = v->vm->ops;
    /* A vCPU restored in HLT waits as it did before the save. */
    if (atomic_exchange(&u->cpu[v->id].resume_halted, 0))
        return hlt_exit(v);
    int ready = 0, r = ops->vcpu_irq_window(v->priv, 0, &ready);
    if (r < 0)
        return r;
    /* A few rounds at most: each takes one thing, an interrupt once. */
    for (int round = 0; round < 4; round++) {
        uint8_t vec = 0;
        int k = hvi_irqchip_pending(u->chip, v->id);
        if (k == HVI_IRQ_NONE)
            break;
        if (k == HVI_IRQ_INTR && !ready) {
            r = ops->vcpu_irq_window(v->priv, 1, &ready);
            break;
        }
        switch (hvi_irqchip_ack(u->chip, v->id, &vec)) {
        case HVI_IRQ_SIPI: r = start_at(v, vec); break;
        case HVI_IRQ_NMI:
            r = ops->vcpu_inject(v->priv, HVC_BACKEND_INJECT_NMI, 0);
            break;
        case HVI_IRQ_INTR:
            r = ops->vcpu_inject(v->priv, HVC_BACKEND_INJECT_INTR, vec);
            ready = 0; /* one per entry; the window for the next */
            break;
        default: break; /* INIT: the LAPIC now waits for a SIPI */
        }
        if (r < 0)
            return r;
    }
    if (hvi_irqchip_wait_sipi(u->chip, v->id)) {
        halt(v, false);
        return 1;
    }
    return r;
}

/* The guest TSC rate, which is fixed once a vCPU ran; @p locked when the
 * caller holds vm->lock. */
static uint32_t tsc_khz(hvc_vcpu *v, bool locked)
{
    struct hvi_uirq *u = v->vm->uirq;
    uint32_t khz = atomic_load(&u->tsc_khz);
    if (khz)
        return khz;
    hvc_tsc_info info;
    if (!locked)
        pthread_mutex_lock(&v->vm->lock);
    if (hvi_tsc_ops(v->vm) && hvi_tsc_info(v->vm, &info, NULL) == 0)
        khz = hvi_tsc_rate_khz(v->vm, &info);
    if (!locked)
        pthread_mutex_unlock(&v->vm->lock);
    if (atomic_load(&v->vm->tsc->ran))
        atomic_store(&u->tsc_khz, khz);
    return khz;
}

static int msr(hvc_vcpu *v, hvc_exit *exit)
{
    struct hvi_uirq *u = v->vm->uirq;
    uint32_t index = exit->u.internal.code;
    uint64_t value = exit->u.internal.data[0];
    int r;
    if (exit->u.internal.data[1]) {
        uint64_t tsc = 0;
        uint32_t khz = 0;
        if (index == HVI_MSR_TSC_DEADLINE_IRQ) {
            khz = tsc_khz(v, false);
            hvi_tsc_msr_get(v, MSR_IA32_TSC, &tsc);
        }
        r = hvi_irqchip_wrmsr(u->chip, v->id, index, value, tsc, khz);
        if (r > 0 && index == HVI_MSR_APIC_BASE) {
            int e = mirror_apic_base(v);
            if (e < 0)
                return e;
        }
    } else {
        value = 0;
        r = hvi_irqchip_rdmsr(u->chip, v->id, index, &value);
    }
    /* Not the chips' (r == 0) or refused: #GP, as without the exit. */
    v->io_pending = true;
    return v->vm->ops->vcpu_complete_msr(v->priv, r <= 0, value);
}

int hvi_uirq_exit(hvc_vcpu *v, hvc_exit *exit)
{
    struct hvi_uirq *u = v->vm->uirq;
    switch (exit->reason) {
    case HVC_EXIT_HLT: return hlt_exit(v);
    case HVC_BACKEND_EXIT_IRQ_WINDOW: return 1;
    case HVC_BACKEND_EXIT_MSR: {
        int r = msr(v, exit);
        return r < 0 ? r : 1;
    }
    case HVC_EXIT_PIO: {
        uint8_t *d = exit->u.io.data;
        for (uint32_t i = 0; i < exit->u.io.count; i++, d += exit->u.io.size)
            if (!hvi_irqchip_pio(u->chip, exit->u.io.port, exit->u.io.size,
                                 exit->u.io.is_write, d))
                return 0;
        return 1;
    }
    case HVC_EXIT_MMIO:
        return hvi_irqchip_mmio(u->chip, v->id, exit->u.mmio.addr,
                                exit->u.mmio.size, exit->u.mmio.is_write,
                                exit->u.mmio.data)
                   ? 1
                   : 0;
    default: return 0;
    }
}

int hvi_uirq_set_irq(hvc_vm *vm, uint32_t gsi, int level)
{
    if (gsi >= HVI_IRQCHIP_PINS)
        return hvi_error(-EINVAL,
                         "GSI %u is out of range: the IOAPIC has pins "
                         "0..%d",
                         gsi, HVI_IRQCHIP_PINS - 1);
    hvi_irqchip_set_irq(vm->uirq->chip, gsi, level);
    return 0;
}

int hvi_uirq_msi(hvc_vm *vm, uint64_t address, uint32_t data)
{
    return hvi_irqchip_msi(vm->uirq->chip, address, data);
}

/* --- State --- */
/* The chips' kinds in the architectural layouts (arch_state.h), and the
 * vCPU's events, which the backend holds but for what the LAPIC holds
 * (the wait for a SIPI, a pending NMI) and what the core holds (HLT). */

bool hvi_uirq_owns(const hvc_vm *vm, uint32_t kind)
{
    return vm->uirq && (kind == HVC_BACKEND_VCPU_ARCH_LAPIC ||
                        kind == HVC_BACKEND_VCPU_ARCH_EVENTS ||
                        kind == HVC_BACKEND_VM_ARCH_PIC_MASTER ||
                        kind == HVC_BACKEND_VM_ARCH_PIC_SLAVE ||
                        kind == HVC_BACKEND_VM_ARCH_IOAPIC ||
                        kind == HVC_BACKEND_VM_ARCH_PIT);
}

int hvi_uirq_state_size(uint32_t kind, size_t *n)
{
    switch (kind) {
    case HVC_BACKEND_VCPU_ARCH_LAPIC: *n = sizeof(struct hvi_x86_lapic); break;
    case HVC_BACKEND_VCPU_ARCH_EVENTS:
        *n = sizeof(struct hvi_x86_events);
        break;
    case HVC_BACKEND_VM_ARCH_PIC_MASTER:
    case HVC_BACKEND_VM_ARCH_PIC_SLAVE: *n = sizeof(struct hvi_x86_pic); break;
    case HVC_BACKEND_VM_ARCH_IOAPIC: *n = sizeof(struct hvi_x86_ioapic); break;
    case HVC_BACKEND_VM_ARCH_PIT: *n = sizeof(struct hvi_x86_pit); break;
    default: return hvi_error(-EINVAL, "state kind %u is not a chip's", kind);
    }
    return 0;
}

static int check_len(uint32_t kind, size_t n)
{
    size_t want = 0;
    int r = hvi_uirq_state_size(kind, &want);
    if (r == 0 && n != want)
        r = hvi_error(-EINVAL,
                      "interrupt controller state %u of %zu bytes, "
                      "expected %zu",
                      kind, n, want);
    return r;
}

int hvi_uirq_vcpu_state_get(hvc_vcpu *v, uint32_t kind, void *buf, size_t n)
{
    struct hvi_uirq *u = v->vm->uirq;
    int r = check_len(kind, n);
    if (r < 0)
        return r;
    if (kind == HVC_BACKEND_VCPU_ARCH_LAPIC) {
        hvi_irqchip_get_lapic(u->chip, v->id, buf);
        return 0;
    }
    struct hvi_x86_events ev;
    if ((r = hvi_bk_get_state(v, kind, &ev, sizeof(ev))) < 0)
        return r;
    uint32_t act;
    uint8_t sipi;
    bool nmi;
    hvi_irqchip_get_cpu(u->chip, v->id, &act, &sipi, &nmi);
    if (act == HVI_X86_ACT_ACTIVE &&
        (atomic_load(&u->cpu[v->id].halted) ||
         atomic_load(&u->cpu[v->id].resume_halted)))
        act = HVI_X86_ACT_HLT;
    ev.activity = act;
    ev.sipi_vector = sipi;
    if (nmi && ev.nmi_pending < 2)
        ev.nmi_pending++;
    memcpy(buf, &ev, sizeof(ev));
    return 0;
}

int hvi_uirq_vcpu_state_set(hvc_vcpu *v, uint32_t kind, const void *buf,
                            size_t n)
{
    struct hvi_uirq *u = v->vm->uirq;
    int r;
    if (kind == HVC_BACKEND_VCPU_ARCH_LAPIC) {
        if ((r = hvi_x86_check_lapic(buf, n)) < 0)
            return r;
        return hvi_irqchip_set_lapic(u->chip, v->id, buf);
    }
    if ((r = hvi_x86_check_events(buf, n)) < 0)
        return r;
    struct hvi_x86_events ev;
    memcpy(&ev, buf, sizeof(ev));
    uint32_t act = ev.activity;
    if (act == HVI_X86_ACT_SHUTDOWN)
        return hvi_error(-EINVAL, "EVENTS state: activity state %u "
                                  "(shutdown) cannot be restored",
                         act);
    /* The backend keeps the rest; the activity is the chips' and the
     * core's, and pending NMIs the backend's queue. */
    ev.activity = HVI_X86_ACT_ACTIVE;
    ev.sipi_vector = 0;
    if ((r = hvi_bk_set_state(v, kind, &ev, sizeof(ev))) < 0)
        return r;
    hvi_irqchip_set_cpu(u->chip, v->id, act, ((const struct hvi_x86_events *)
                                                  buf)->sipi_vector,
                        false);
    atomic_store(&u->cpu[v->id].resume_halted, act == HVI_X86_ACT_HLT);
    return 0;
}

int hvi_uirq_vm_state_get(hvc_vm *vm, uint32_t kind, void *buf, size_t n)
{
    struct hvi_irqchip *c = vm->uirq->chip;
    int r = check_len(kind, n);
    if (r < 0)
        return r;
    switch (kind) {
    case HVC_BACKEND_VM_ARCH_PIC_MASTER: hvi_irqchip_get_pic(c, 0, buf); break;
    case HVC_BACKEND_VM_ARCH_PIC_SLAVE: hvi_irqchip_get_pic(c, 1, buf); break;
    case HVC_BACKEND_VM_ARCH_IOAPIC: hvi_irqchip_get_ioapic(c, buf); break;
    default: hvi_irqchip_get_pit(c, buf); break;
    }
    return 0;
}

int hvi_uirq_vm_state_set(hvc_vm *vm, uint32_t kind, const void *buf,
                          size_t n)
{
    struct hvi_irqchip *c = vm->uirq->chip;
    int r;
    switch (kind) {
    case HVC_BACKEND_VM_ARCH_PIC_MASTER:
    case HVC_BACKEND_VM_ARCH_PIC_SLAVE: {
        int slave = kind == HVC_BACKEND_VM_ARCH_PIC_SLAVE;
        if ((r = hvi_x86_check_pic(slave ? "PIC slave" : "PIC master", buf,
                                   n)) < 0)
            return r;
        return hvi_irqchip_set_pic(c, slave, buf);
    }
    case HVC_BACKEND_VM_ARCH_IOAPIC:
        if ((r = hvi_x86_check_ioapic(buf, n)) < 0)
            return r;
        return hvi_irqchip_set_ioapic(c, buf);
    default:
        if ((r = hvi_x86_check_pit(buf, n)) < 0)
            return r;
        return hvi_irqchip_set_pit(c, buf);
    }
}

/* IA32_TSC_DEADLINE for the TSC record (tsc.c), vm->lock held. */
int hvi_uirq_tsc_deadline_get(hvc_vcpu *v, uint64_t *value)
{
    *value = 0;
    return hvi_irqchip_rdmsr(v->vm->uirq->chip, v->id,
                             HVI_MSR_TSC_DEADLINE_IRQ, value) == 1
               ? 0
               : -EINVAL;
}

int hvi_uirq_tsc_deadline_set(hvc_vcpu *v, uint64_t value)
{
    uint64_t tsc = 0;
    hvi_tsc_msr_get(v, MSR_IA32_TSC, &tsc);
    hvi_irqchip_wrmsr(v->vm->uirq->chip, v->id, HVI_MSR_TSC_DEADLINE_IRQ,
                      value, tsc, tsc_khz(v, true));
    return 0;
}

void hvi_uirq_pit_catchup(hvc_vm *vm, int enable, int drop)
{
    hvi_pit_set_reinject(vm->uirq->chip, enable != 0, drop != 0);
}

/* --- Capabilities --- */

int hvi_uirq_cap(hvc_hypervisor *hv, int cap, uint64_t *value)
{
    const hvc_backend_ops *ops = hv->ops;
    bool user_ok = ops->version >= 6 && ops->vcpu_inject &&
                   ops->vcpu_irq_window && ops->vcpu_complete_msr;
    uint64_t kernel = 0;
    if (ops->get_cap(hv->priv, cap, &kernel) < 0 &&
        ops->get_cap(hv->priv, HVC_CAP_IRQCHIP, &kernel) < 0)
        kernel = 0;
    *value = kernel    ? HVC_IRQCHIP_KERNEL
             : user_ok ? HVC_IRQCHIP_USER
                       : HVC_IRQCHIP_NONE;
    return 0;
}
