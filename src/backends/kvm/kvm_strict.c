/* TEST-ONLY variants of the KVM backend, so that the core's handling of
 * other backends' rules is exercised on real guests here. Never meant for
 * production: each makes KVM behave worse than it does. The environment
 * is read every time the backend opens (hvc_hypervisor_open); a variant
 * lives as long as that handle.
 *
 *   HVCORE_KVM_STRICT_THREADS=1  The backend declares
 *       HVC_BACKEND_VCPU_THREAD_BOUND, as Hypervisor.framework does, and
 *       every vCPU call (all vcpu_* ops and the TSC vcpu_* ops, except
 *       vcpu_kick) made on a thread other than the one that created the
 *       vCPU fails with -EPERM, with a message, and is counted
 *       (hvi_kvm_strict_violations()).
 *   HVCORE_KVM_NO_EVENTFD=1  vm_irqfd and vm_ioeventfd are absent, so the
 *       core's fallbacks carry eventfd interrupts and doorbells.
 *   HVCORE_KVM_MAX_VMS=N  get_cap answers HVC_CAP_MAX_VMS with N (1 is
 *       Hypervisor.framework's limit).
 */
#include "kvm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

extern const hvc_backend_ops hvi_kvm_backend;

static atomic_ulong violations;
static unsigned long max_vms; /* HVCORE_KVM_MAX_VMS, read at open */

unsigned long hvi_kvm_strict_violations(void)
{
    return atomic_load(&violations);
}

static int off_thread(void *vcpu_priv, const char *op)
{
    struct hvi_kvm_vcpu *v = vcpu_priv;
    if (pthread_equal(v->creator, pthread_self()))
        return 0;
    atomic_fetch_add(&violations, 1);
    hvi_log(HVC_LOG_ERROR,
            "kvm strict threads: %s on vCPU %u from a thread other than "
            "the one that created it",
            op, v->id);
    return hvi_error(-EPERM,
                     "kvm strict threads: %s on vCPU %u called off the "
                     "vCPU's thread",
                     op, v->id);
}

#define CHECK(p, op)                                                           \
    do {                                                                       \
        int chk_ = off_thread((p), (op));                                      \
        if (chk_ < 0)                                                          \
            return chk_;                                                       \
    } while (0)

static void s_vcpu_destroy(void *p)
{
    if (off_thread(p, "vcpu_destroy") < 0)
        return; /* leaks the vCPU: the test fails on the count */
    hvi_kvm_vcpu_destroy(p);
}

static int s_run_prepare(void *p)
{
    CHECK(p, "vcpu_run_prepare");
    return hvi_kvm_vcpu_run_prepare(p);
}

static int s_run(void *p, hvc_exit *exit)
{
    CHECK(p, "vcpu_run");
    return hvi_kvm_vcpu_run(p, exit);
}

static int s_get_regs(void *p, const hvc_reg *ids, uint64_t *values,
                      size_t count)
{
    CHECK(p, "vcpu_get_regs");
    return hvi_kvm_get_regs(p, ids, values, count);
}

static int s_set_regs(void *p, const hvc_reg *ids, const uint64_t *values,
                      size_t count)
{
    CHECK(p, "vcpu_set_regs");
    return hvi_kvm_set_regs(p, ids, values, count);
}

static int s_get_segment(void *p, hvc_reg id, hvc_x86_segment *seg)
{
    CHECK(p, "vcpu_get_segment");
    return hvi_kvm_get_segment(p, id, seg);
}

static int s_set_segment(void *p, hvc_reg id, const hvc_x86_segment *seg)
{
    CHECK(p, "vcpu_set_segment");
    return hvi_kvm_set_segment(p, id, seg);
}

static int s_fpu_size(void *p, size_t *size)
{
    CHECK(p, "vcpu_fpu_size");
    return hvi_kvm_fpu_size(p, size);
}

static int s_get_fpu(void *p, void *buf, size_t length)
{
    CHECK(p, "vcpu_get_fpu");
    return hvi_kvm_get_fpu(p, buf, length);
}

static int s_set_fpu(void *p, const void *buf, size_t length)
{
    CHECK(p, "vcpu_set_fpu");
    return hvi_kvm_set_fpu(p, buf, length);
}

static int s_set_runnable(void *p)
{
    CHECK(p, "vcpu_set_runnable");
    return hvi_kvm_set_runnable(p);
}

static int s_flush(void *p)
{
    CHECK(p, "vcpu_flush");
    return hvi_kvm_vcpu_flush(p);
}

static int s_state_size(void *p, uint32_t kind, size_t *size)
{
    CHECK(p, "vcpu_state_size");
    return hvi_kvm_vcpu_state_size(p, kind, size);
}

static int s_get_state(void *p, uint32_t kind, void *buf, size_t length)
{
    CHECK(p, "vcpu_get_state");
    return hvi_kvm_vcpu_get_state(p, kind, buf, length);
}

static int s_set_state(void *p, uint32_t kind, const void *buf, size_t length)
{
    CHECK(p, "vcpu_set_state");
    return hvi_kvm_vcpu_set_state(p, kind, buf, length);
}

static int s_apply_frequency(void *p)
{
    CHECK(p, "tsc vcpu_apply_frequency");
    return hvi_kvm_tsc_ops.vcpu_apply_frequency(p);
}

static int s_get_offset(void *p, uint64_t *offset)
{
    CHECK(p, "tsc vcpu_get_offset");
    return hvi_kvm_tsc_ops.vcpu_get_offset(p, offset);
}

static int s_set_offset(void *p, uint64_t offset)
{
    CHECK(p, "tsc vcpu_set_offset");
    return hvi_kvm_tsc_ops.vcpu_set_offset(p, offset);
}

static hvc_backend_tsc_ops strict_tsc;
static pthread_once_t strict_tsc_once = PTHREAD_ONCE_INIT;

static void strict_tsc_init(void)
{
    strict_tsc = hvi_kvm_tsc_ops;
    strict_tsc.vcpu_apply_frequency = s_apply_frequency;
    strict_tsc.vcpu_get_offset = s_get_offset;
    strict_tsc.vcpu_set_offset = s_set_offset;
}

static int capped_get_cap(void *priv, int cap, uint64_t *value)
{
    if (cap == HVC_CAP_MAX_VMS) {
        *value = max_vms;
        return 0;
    }
    return hvi_kvm_backend.get_cap(priv, cap, value);
}

static bool env_on(const char *name)
{
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
}

int hvi_kvm_variant(hvc_backend_ops *copy)
{
    bool strict = env_on("HVCORE_KVM_STRICT_THREADS");
    bool no_eventfd = env_on("HVCORE_KVM_NO_EVENTFD");
    const char *mv = getenv("HVCORE_KVM_MAX_VMS");
    if (!strict && !no_eventfd && !(mv && *mv))
        return 0;
    *copy = hvi_kvm_backend;
    if (strict) {
        pthread_once(&strict_tsc_once, strict_tsc_init);
        copy->flags |= HVC_BACKEND_VCPU_THREAD_BOUND;
        copy->vcpu_destroy = s_vcpu_destroy;
        copy->vcpu_run_prepare = s_run_prepare;
        copy->vcpu_run = s_run;
        copy->vcpu_get_regs = s_get_regs;
        copy->vcpu_set_regs = s_set_regs;
        copy->vcpu_get_segment = s_get_segment;
        copy->vcpu_set_segment = s_set_segment;
        copy->vcpu_fpu_size = s_fpu_size;
        copy->vcpu_get_fpu = s_get_fpu;
        copy->vcpu_set_fpu = s_set_fpu;
        copy->vcpu_set_runnable = s_set_runnable;
        copy->vcpu_flush = s_flush;
        copy->vcpu_state_size = s_state_size;
        copy->vcpu_get_state = s_get_state;
        copy->vcpu_set_state = s_set_state;
        copy->tsc = &strict_tsc;
    }
    if (no_eventfd) {
        copy->vm_irqfd = NULL;
        copy->vm_ioeventfd = NULL;
    }
    if (mv && *mv) {
        char *end;
        unsigned long n = strtoul(mv, &end, 10);
        if (*end == '\0')
            max_vms = n;
        copy->get_cap = capped_get_cap;
    }
    return 1;
}
