/* The memory-sharing audit (hvcore/audit.h) on real VMs: a guest memfd
 * mapped by a second process, KSM merging two VMs' identical pages and
 * unmerging them, the resume guard, and a process without the privilege.
 * The KSM test switches /sys/kernel/mm/ksm on and puts every setting it
 * changed back: in the test's fini, and again in the runner process after
 * all tests, should a test process die. */
#include "hvtest.h"

#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REGION_GPA 0x10000000u
#define REGION_PAGES 64u

static void audit(hvc_vm *vm, uint32_t flags, hvc_sharing_report *rep)
{
    hvc_audit_options o = HVC_AUDIT_OPTIONS_INIT;
    o.flags = flags;
    memset(rep, 0, sizeof(*rep));
    rep->size = sizeof(*rep);
    HVT_OK(hvc_vm_audit_sharing(vm, &o, rep));
}

static void print_report(const char *what, const hvc_sharing_report *r)
{
    cr_log_info("%s: %llu pages, %llu resident, %llu swapped, %llu not "
                "resident; shared: %llu KSM, %llu mapped elsewhere, %llu "
                "zero; flags 0x%x",
                what, (unsigned long long)r->pages,
                (unsigned long long)r->resident, (unsigned long long)r->swapped,
                (unsigned long long)r->not_resident, (unsigned long long)r->ksm,
                (unsigned long long)r->mapped_elsewhere,
                (unsigned long long)r->zero, r->flags);
}

/* Fills page i of [gpa, gpa + pages) with a pattern of i alone; 0, or the
 * failed write's error. */
static int fill_pages(hvc_vm *vm, uint64_t gpa, unsigned pages)
{
    static uint8_t page[HVC_PAGE_SIZE];
    for (unsigned i = 0; i < pages; i++) {
        memset(page, (int)(i % 251) + 1, sizeof(page));
        memcpy(page, &i, sizeof(i));
        int r = hvc_vm_write(vm, gpa + (uint64_t)i * HVC_PAGE_SIZE, page,
                             sizeof(page));
        if (r < 0)
            return r;
    }
    return 0;
}

static void fill(hvc_vm *vm, uint64_t gpa, unsigned pages)
{
    HVT_OK(fill_pages(vm, gpa, pages));
}

static hvc_memory_region *add_region(hvc_vm *vm, uint32_t flags)
{
    hvc_memory_options o = HVC_MEMORY_OPTIONS_INIT;
    o.guest_addr = REGION_GPA;
    o.length = (uint64_t)REGION_PAGES * HVC_PAGE_SIZE;
    o.flags = flags;
    hvc_memory_region *r;
    HVT_OK(hvc_vm_add_memory(vm, &o, &r));
    return r;
}

Test(audit, rejects_bad_arguments)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_sharing_report rep = {.size = sizeof(rep)};
    HVT_ERR(hvc_vm_audit_sharing(NULL, NULL, &rep), -EINVAL);
    HVT_ERR(hvc_vm_audit_sharing(t.vm, NULL, NULL), -EINVAL);
    rep.size = 8;
    HVT_ERR(hvc_vm_audit_sharing(t.vm, NULL, &rep), -EINVAL);
    rep.size = sizeof(rep);
    hvc_audit_options o = HVC_AUDIT_OPTIONS_INIT;
    o.flags = 0x80;
    HVT_ERR(hvc_vm_audit_sharing(t.vm, &o, &rep), -EINVAL);
    o.flags = 0;
    o.size = 4;
    HVT_ERR(hvc_vm_audit_sharing(t.vm, &o, &rep), -EINVAL);
    HVT_ERR(hvc_vm_set_sharing_guard(t.vm, 0x100), -EINVAL);
    HVT_ERR(hvc_vm_set_sharing_guard(NULL, 0), -EINVAL);
    hvt_close(&t);
}

/* Root with CAP_SYS_ADMIN: every page of RAM is counted once; untouched
 * RAM is not resident, written RAM is, and a page only read maps the zero
 * page (caller memory: the library's memfd never maps it). */
Test(audit, counts_residency_and_zero_pages)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_memory_region *r = add_region(t.vm, 0);
    fill(t.vm, REGION_GPA, 16);
    /* Private anonymous memory of the caller's, half of it only read. */
    size_t len = 32 * HVC_PAGE_SIZE;
    uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(mem, MAP_FAILED);
    for (size_t i = 0; i < 16; i++)
        (void)*(volatile uint8_t *)(mem + i * HVC_PAGE_SIZE);
    for (size_t i = 16; i < 32; i++)
        mem[i * HVC_PAGE_SIZE] = 1;
    hvc_memory_options o = HVC_MEMORY_OPTIONS_INIT;
    o.guest_addr = 0x20000000;
    o.length = len;
    o.host_addr = mem;
    HVT_OK(hvc_vm_add_memory(t.vm, &o, NULL));

    hvc_sharing_report rep;
    audit(t.vm, 0, &rep);
    print_report("residency", &rep);
    cr_assert_eq(rep.regions, 3);
    cr_assert_eq(rep.pages, HVT_MEM / HVC_PAGE_SIZE + REGION_PAGES + 32);
    cr_assert_eq(rep.resident + rep.swapped + rep.not_resident, rep.pages);
    cr_assert_eq(rep.resident, 16 + 32, "%llu",
                 (unsigned long long)rep.resident);
    cr_assert_eq(rep.zero, 16);
    cr_assert_eq(rep.ksm, 0);
    cr_assert_eq(rep.mapped_elsewhere, 0);
    cr_assert_eq(rep.flags, 0);
    (void)r;
    hvt_close(&t);
    munmap(mem, len);
}

/* Pages of [p, p + len) that this process maps (present in its
 * pagemap), or -1. */
static int mapped_here(const uint8_t *p, size_t len)
{
    FILE *f = fopen("/proc/self/pagemap", "re");
    if (!f)
        return -1;
    int n = 0;
    for (size_t off = 0; off < len; off += HVC_PAGE_SIZE) {
        uint64_t e;
        if (fseeko(f, (off_t)(((uintptr_t)p + off) / HVC_PAGE_SIZE * 8),
                   SEEK_SET) != 0 ||
            fread(&e, sizeof(e), 1, f) != 1) {
            n = -1;
            break;
        }
        n += (int)(e >> 63);
    }
    fclose(f);
    return n;
}

struct spinner {
    hvc_vcpu *vcpu;
    int rc;
    uint32_t reason;
};

static void *spin(void *arg)
{
    struct spinner *s = arg;
    const hvc_exit *e = NULL;
    s->rc = hvc_vcpu_run(s->vcpu, &e);
    s->reason = s->rc == 0 ? e->reason : 0;
    return NULL;
}

/* Pages the guest wrote are resident and its own; the audit runs while a
 * vCPU spins in the guest, and the guard lets a paused VM with nothing
 * shared resume. */
Test(audit, guest_pages_and_audit_while_running, .timeout = 60)
{
    hvt t;
    hvt_open(&t, 0);
    add_region(t.vm, 0);
    hvc_sharing_report rep;
    audit(t.vm, 0, &rep);
    uint64_t before = rep.resident;
    hvt_load(t.vm, "touch64");
    uint64_t range[2] = {REGION_GPA, (uint64_t)REGION_PAGES * HVC_PAGE_SIZE};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, range, sizeof(range)));
    hvc_vcpu *v = hvt_vcpu(t.vm, 0, HVC_X86_MODE_LONG64, 0);
    cr_assert_eq(hvt_run_done(v), 0x7c);
    audit(t.vm, 0, &rep);
    print_report("after the guest wrote the region", &rep);
    cr_assert_geq(rep.resident, before + REGION_PAGES);
    cr_assert_eq(rep.ksm + rep.mapped_elsewhere + rep.zero, 0);

    hvt_load(t.vm, "spin64");
    struct spinner s = {hvt_vcpu(t.vm, 1, HVC_X86_MODE_LONG64, 0), -1, 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, spin, &s), 0);
    uint64_t counter = 0;
    while (counter == 0)
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &counter, sizeof(counter)));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum { AUDITS = 50 };
    for (int i = 0; i < AUDITS; i++) {
        audit(t.vm, 0, &rep);
        cr_assert_eq(rep.resident + rep.swapped + rep.not_resident, rep.pages);
        cr_assert_eq(rep.mapped_elsewhere + rep.ksm, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_log_info("%d audits of %llu pages while a vCPU spins: %.0f us each",
                AUDITS, (unsigned long long)rep.pages,
                ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
                 (double)(t1.tv_nsec - t0.tv_nsec)) /
                    1e3 / AUDITS);
    HVT_OK(
        hvc_vm_set_sharing_guard(t.vm, HVC_SHARING_KSM | HVC_SHARING_MAPPED));
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    uint64_t later = counter;
    while (later == counter)
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &later, sizeof(later)));
    HVT_OK(hvc_vcpu_kick(s.vcpu));
    pthread_join(th, NULL);
    cr_assert_eq(s.rc, 0, "%s", hvc_last_error());
    cr_assert_eq(s.reason, HVC_EXIT_KICK);
    hvt_close(&t);
}

/* The child's side of the memfd test: drop every inherited view of guest
 * RAM, map the region's memfd anew and touch pages 0..15 by writing and
 * 32..39 by reading, then tell the parent how many pages it maps (a read
 * fault maps the pages around it too) and wait. */
static void second_process(hvt *t, int fd, int ready, int done)
{
    hvc_memory_region *regs[8];
    size_t n;
    if (hvc_vm_list_memory(t->vm, regs, 8, &n) < 0 || n > 8)
        _exit(2);
    for (size_t i = 0; i < n; i++)
        munmap(hvc_memory_region_hva(regs[i]),
               hvc_memory_region_length(regs[i]));
    size_t len = (size_t)REGION_PAGES * HVC_PAGE_SIZE;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        _exit(3);
    for (unsigned i = 0; i < 16; i++)
        p[i * HVC_PAGE_SIZE + 8] = 0x5a;
    for (unsigned i = 32; i < 40; i++)
        (void)*(volatile uint8_t *)(p + i * HVC_PAGE_SIZE);
    int mapped = mapped_here(p, len);
    if (write(ready, &mapped, sizeof(mapped)) != sizeof(mapped))
        _exit(4);
    char c;
    (void)!read(done, &c, 1); /* the parent closes it */
    _exit(0);
}

struct sharer {
    pid_t pid;
    int done;
    int mapped; /* pages the second process maps */
};

static struct sharer start_sharer(hvt *t, hvc_memory_region *r)
{
    int ready[2], done[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(done), 0);
    int fd = hvc_memory_region_fd(r);
    cr_assert_geq(fd, 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(ready[0]);
        close(done[1]);
        second_process(t, fd, ready[1], done[0]);
    }
    close(ready[1]);
    close(done[0]);
    int mapped = -1;
    cr_assert_eq(read(ready[0], &mapped, sizeof(mapped)), sizeof(mapped),
                 "the second process failed");
    close(ready[0]);
    cr_log_info("the second process maps %d pages of the region", mapped);
    cr_assert_geq(mapped, 16 + 8);
    return (struct sharer){pid, done[1], mapped};
}

static void stop_sharer(struct sharer s)
{
    close(s.done);
    int st;
    cr_assert_eq(waitpid(s.pid, &st, 0), s.pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
}

Test(audit, memfd_mapped_by_second_process)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_memory_region *r = add_region(t.vm, 0);
    fill(t.vm, REGION_GPA, REGION_PAGES);
    hvc_sharing_report rep;
    audit(t.vm, 0, &rep);
    print_report("before", &rep);
    cr_assert_eq(rep.mapped_elsewhere, 0);
    cr_assert_eq(rep.resident, REGION_PAGES);

    struct sharer s = start_sharer(&t, r);
    audit(t.vm, 0, &rep);
    print_report("memfd mapped by a second process", &rep);
    cr_assert_eq(rep.mapped_elsewhere, (uint64_t)s.mapped, "%llu, not %d",
                 (unsigned long long)rep.mapped_elsewhere, s.mapped);
    cr_assert_eq(rep.ksm, 0);
    cr_assert_eq(rep.resident, REGION_PAGES);
    stop_sharer(s);

    audit(t.vm, 0, &rep);
    print_report("after it exited", &rep);
    cr_assert_eq(rep.mapped_elsewhere, 0);
    hvt_close(&t);
}

Test(audit, guard_refuses_resume_while_shared)
{
    hvt t;
    hvt_open(&t, 0);
    hvc_memory_region *r = add_region(t.vm, 0);
    fill(t.vm, REGION_GPA, REGION_PAGES);
    HVT_OK(hvc_vm_set_sharing_guard(t.vm, HVC_SHARING_MAPPED));
    HVT_OK(hvc_vm_pause(t.vm));
    struct sharer s = start_sharer(&t, r);
    HVT_ERR(hvc_vm_resume(t.vm), -EBUSY);
    cr_log_info("refused: %s", hvc_last_error());
    char expect[64];
    snprintf(expect, sizeof(expect), "%d mapped elsewhere", s.mapped);
    cr_assert(strstr(hvc_last_error(), expect), "%s", hvc_last_error());
    cr_assert(hvc_vm_is_paused(t.vm));
    /* Nested pauses are not checked: only the outermost resume lets the
     * vCPUs run. */
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    /* A guard on other kinds lets it go. */
    HVT_OK(hvc_vm_set_sharing_guard(t.vm, HVC_SHARING_KSM));
    HVT_OK(hvc_vm_resume(t.vm));
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_set_sharing_guard(t.vm, HVC_SHARING_MAPPED));
    HVT_ERR(hvc_vm_resume(t.vm), -EBUSY);
    stop_sharer(s);
    HVT_OK(hvc_vm_resume(t.vm));
    cr_assert_not(hvc_vm_is_paused(t.vm));
    HVT_OK(hvc_vm_set_sharing_guard(t.vm, 0));
    hvt_close(&t);
}

/* --- KSM: settings saved, switched on, and always put back --- */

#define KSM_DIR "/sys/kernel/mm/ksm/"
static const char *const ksm_knobs[] = {"run", "pages_to_scan",
                                        "sleep_millisecs"};
#define NKNOBS (sizeof(ksm_knobs) / sizeof(ksm_knobs[0]))

struct ksm_settings {
    int saved;
    char v[NKNOBS][32];
};

static int ksm_read(const char *knob, char *buf, size_t size)
{
    char path[128];
    snprintf(path, sizeof(path), KSM_DIR "%s", knob);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

static int ksm_write(const char *knob, const char *v)
{
    char path[128];
    snprintf(path, sizeof(path), KSM_DIR "%s", knob);
    FILE *f = fopen(path, "we");
    if (!f)
        return -1;
    int ok = fputs(v, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static unsigned long ksm_stat(const char *knob)
{
    char buf[32];
    return ksm_read(knob, buf, sizeof(buf)) == 0 ? strtoul(buf, NULL, 10) : 0;
}

static void ksm_save(struct ksm_settings *s)
{
    s->saved = 1;
    for (size_t i = 0; i < NKNOBS; i++)
        if (ksm_read(ksm_knobs[i], s->v[i], sizeof(s->v[i])) < 0)
            s->saved = 0;
}

/* "run" last: ksmd stops only once its pace is back. */
static void ksm_restore(struct ksm_settings *s)
{
    if (!s->saved)
        return;
    for (size_t i = NKNOBS; i-- > 0;)
        ksm_write(ksm_knobs[i], s->v[i]);
    s->saved = 0;
}

/* The runner process's copy, taken before any test runs and put back
 * after all of them, whatever became of the test processes. */
static struct ksm_settings ksm_runner;
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    ksm_save(&ksm_runner);
}
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    ksm_restore(&ksm_runner);
}

static struct ksm_settings ksm_test;
static void ksm_fini(void)
{
    ksm_restore(&ksm_test);
}

static void ksm_init(void)
{
    if (access(KSM_DIR "run", W_OK) != 0)
        cr_skip_test("KSM is not available here (" KSM_DIR "run)");
    ksm_save(&ksm_test);
    cr_assert(ksm_test.saved, "cannot read the KSM settings");
}

/* VM B of the KSM test: in this process, or, where the backend allows one
 * VM per process (HVC_CAP_MAX_VMS 1: Hypervisor.framework), in a child
 * forked before VM A exists, as another VMM's guest would be. KSM merges
 * the pages of any processes alike. The child answers audits and page
 * reads on a socket, one request and one response each. */
struct peer {
    hvt t;     /* VM B here, or */
    pid_t pid; /* the child that holds it */
    int sock;
};

#define PEER_READ 0xffffffffu /* else the audit flags */
struct peer_req {
    uint32_t op;
    uint64_t gpa;
};

struct peer_rsp {
    int32_t rc;
    char msg[256];
    hvc_sharing_report rep;
    uint8_t page[HVC_PAGE_SIZE];
};

static int peer_vm(hvc_hypervisor **hv, hvc_vm **vm)
{
    hvc_memory_options o = HVC_MEMORY_OPTIONS_INIT;
    o.guest_addr = REGION_GPA;
    o.length = (uint64_t)REGION_PAGES * HVC_PAGE_SIZE;
    o.flags = HVC_MEMORY_MERGEABLE;
    int r;
    if ((r = hvc_hypervisor_open(hvt_backend(), hv)) < 0 ||
        (r = hvc_vm_create(*hv, NULL, vm)) < 0 ||
        (r = hvc_vm_add_memory(*vm, &o, NULL)) < 0)
        return r;
    return fill_pages(*vm, REGION_GPA, REGION_PAGES);
}

/* The child: no Criterion assertion here, every failure goes back. */
static void peer_serve(int sock)
{
    static struct peer_rsp rsp;
    hvc_hypervisor *hv = NULL;
    hvc_vm *vm = NULL;
    rsp.rc = peer_vm(&hv, &vm);
    struct peer_req q = {0, 0};
    for (;;) {
        snprintf(rsp.msg, sizeof(rsp.msg), "%s",
                 rsp.rc < 0 ? hvc_last_error() : "");
        if (send(sock, &rsp, sizeof(rsp), 0) != (ssize_t)sizeof(rsp))
            _exit(1);
        if (rsp.rc < 0 || recv(sock, &q, sizeof(q), 0) != (ssize_t)sizeof(q))
            break;
        memset(&rsp, 0, sizeof(rsp));
        if (q.op == PEER_READ) {
            rsp.rc = hvc_vm_read(vm, q.gpa, rsp.page, sizeof(rsp.page));
        } else {
            hvc_audit_options o = HVC_AUDIT_OPTIONS_INIT;
            o.flags = q.op;
            rsp.rep.size = sizeof(rsp.rep);
            rsp.rc = hvc_vm_audit_sharing(vm, &o, &rsp.rep);
        }
    }
    int ok = rsp.rc == 0 && (!vm || hvc_vm_destroy(vm) == 0) &&
             (!hv || hvc_hypervisor_close(hv) == 0);
    _exit(ok ? 0 : 1);
}

/* Sends a request (none for the greeting: @p q NULL), gets the answer. */
static const struct peer_rsp *peer_call(struct peer *p,
                                        const struct peer_req *q)
{
    static struct peer_rsp rsp;
    if (q)
        cr_assert_eq(send(p->sock, q, sizeof(*q), 0), (ssize_t)sizeof(*q));
    cr_assert_eq(recv(p->sock, &rsp, sizeof(rsp), 0), (ssize_t)sizeof(rsp),
                 "VM B's process went away");
    cr_assert_eq(rsp.rc, 0, "VM B's process: %d (%s): %s", rsp.rc,
                 hvc_strerror(rsp.rc), rsp.msg);
    return &rsp;
}

static void peer_open(struct peer *p)
{
    memset(p, 0, sizeof(*p));
    p->sock = -1;
    hvt_require_kvm();
    hvc_hypervisor *hv;
    uint64_t max = 0;
    HVT_OK(hvc_hypervisor_open(hvt_backend(), &hv));
    HVT_OK(hvc_hypervisor_get_cap(hv, HVC_CAP_MAX_VMS, &max));
    HVT_OK(hvc_hypervisor_close(hv));
    if (max != 1) {
        hvt_open(&p->t, 0);
        add_region(p->t.vm, HVC_MEMORY_MERGEABLE);
        fill(p->t.vm, REGION_GPA, REGION_PAGES);
        return;
    }
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    p->pid = hvt_fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        close(sv[0]);
        peer_serve(sv[1]);
    }
    close(sv[1]);
    p->sock = sv[0];
    peer_call(p, NULL); /* the greeting: VM B is ready */
    cr_log_info("one VM per process: VM B is in process %d", (int)p->pid);
}

static void peer_audit(struct peer *p, uint32_t flags, hvc_sharing_report *r)
{
    if (p->t.vm)
        audit(p->t.vm, flags, r);
    else
        *r = peer_call(p, &(struct peer_req){flags, 0})->rep;
}

static void peer_read(struct peer *p, uint64_t gpa, uint8_t *page)
{
    if (p->t.vm)
        HVT_OK(hvc_vm_read(p->t.vm, gpa, page, HVC_PAGE_SIZE));
    else
        memcpy(page, peer_call(p, &(struct peer_req){PEER_READ, gpa})->page,
               HVC_PAGE_SIZE);
}

static void peer_close(struct peer *p)
{
    if (p->t.vm) {
        hvt_close(&p->t);
        return;
    }
    close(p->sock); /* the child destroys its VM and exits */
    int st;
    cr_assert_eq(waitpid(p->pid, &st, 0), p->pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "VM B's process: %d", st);
}

/* Both VMs' counts of KSM pages, after waiting up to timeout_s for
 * target in each. */
static double wait_ksm(hvc_vm *a, struct peer *b, uint64_t target,
                       int timeout_s, hvc_sharing_report *ra,
                       hvc_sharing_report *rb)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        audit(a, 0, ra);
        peer_audit(b, 0, rb);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if ((ra->ksm >= target && rb->ksm >= target) || s > timeout_s)
            return s;
        /* The settings are the host's: another suite running now may
         * have put them back under us. Ours are restored all the same. */
        if (ksm_stat("run") != 1) {
            cr_log_warn("someone stopped KSM while the test waited");
            ksm_write("pages_to_scan", "4000");
            ksm_write("sleep_millisecs", "10");
            ksm_write("run", "1");
        }
        usleep(50000);
    }
}

Test(audit, ksm_merges_and_unmerges_two_vms, .init = ksm_init, .fini = ksm_fini,
     .timeout = 120)
{
    hvt a;
    struct peer b;
    peer_open(&b); /* first: a child must not inherit VM A */
    hvt_open(&a, 0);
    add_region(a.vm, HVC_MEMORY_MERGEABLE);
    fill(a.vm, REGION_GPA, REGION_PAGES);
    hvc_sharing_report ra, rb;
    audit(a.vm, 0, &ra);
    cr_assert_eq(ra.ksm, 0, "merged before KSM was switched on");

    cr_assert_eq(ksm_write("sleep_millisecs", "10"), 0);
    cr_assert_eq(ksm_write("pages_to_scan", "4000"), 0);
    cr_assert_eq(ksm_write("run", "1"), 0);
    double s = wait_ksm(a.vm, &b, REGION_PAGES, 60, &ra, &rb);
    print_report("VM A, KSM on", &ra);
    print_report("VM B, KSM on", &rb);
    cr_log_info("merged after %.2f s (ksmd: pages_shared %lu, "
                "pages_sharing %lu, full_scans %lu)",
                s, ksm_stat("pages_shared"), ksm_stat("pages_sharing"),
                ksm_stat("full_scans"));
    cr_assert_eq(ra.ksm, REGION_PAGES, "VM A: %llu KSM pages after %.1f s",
                 (unsigned long long)ra.ksm, s);
    cr_assert_eq(rb.ksm, REGION_PAGES, "VM B: %llu KSM pages after %.1f s",
                 (unsigned long long)rb.ksm, s);
    cr_assert_eq(ra.mapped_elsewhere, 0);

    /* Unmerging reports what it found, then A's pages are its own. */
    audit(a.vm, HVC_AUDIT_UNMERGE, &ra);
    print_report("VM A, unmerging", &ra);
    cr_assert_eq(ra.ksm, REGION_PAGES);
    cr_assert_eq(ra.unmerged_regions, 1);
    cr_assert(ra.flags & HVC_SHARING_UNMERGED);
    audit(a.vm, 0, &ra);
    print_report("VM A, unmerged", &ra);
    cr_assert_eq(ra.ksm, 0);
    cr_assert_eq(ra.resident, REGION_PAGES);
    /* Still identical, but no longer merged, however long ksmd runs. */
    uint8_t pa[HVC_PAGE_SIZE], pb[HVC_PAGE_SIZE];
    HVT_OK(hvc_vm_read(a.vm, REGION_GPA + 5 * HVC_PAGE_SIZE, pa, sizeof(pa)));
    peer_read(&b, REGION_GPA + 5 * HVC_PAGE_SIZE, pb);
    cr_assert_eq(memcmp(pa, pb, sizeof(pa)), 0);
    usleep(500000);
    audit(a.vm, 0, &ra);
    cr_assert_eq(ra.ksm, 0, "KSM merged an unmerged region again");

    peer_audit(&b, HVC_AUDIT_UNMERGE, &rb);
    cr_assert_eq(rb.unmerged_regions, 1);
    peer_audit(&b, 0, &rb);
    print_report("VM B, unmerged", &rb);
    cr_assert_eq(rb.ksm, 0);
    hvt_close(&a);
    peer_close(&b);
}

/* --- without the privilege --- */

/* Drops CAP_SYS_ADMIN from this process's effective and permitted sets. */
static int drop_sys_admin(void)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0)
        return -1;
    d[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
    d[CAP_SYS_ADMIN / 32].permitted &= ~(1u << (CAP_SYS_ADMIN % 32));
    return (int)syscall(SYS_capset, &h, d);
}

/* In a child without the privilege (dropped by @p how), an audit fails
 * with -EPERM, and with HVC_AUDIT_RESIDENCY_ONLY it counts residency
 * only; the child writes what it saw to @p out. */
static void unprivileged_child(hvt *t, int how, int out)
{
    char msg[1024];
    int n;
    /* A process that changed its user id is not dumpable, which makes its
     * /proc/self files root's; making it dumpable again lets it read its
     * own pagemap, as an unprivileged VMM would. */
    if (how == 0 ? drop_sys_admin() < 0
                 : setuid(65534) < 0 || prctl(PR_SET_DUMPABLE, 1) < 0) {
        n = snprintf(msg, sizeof(msg), "dropping the privilege failed: %s",
                     strerror(errno));
        goto done;
    }
    uint8_t page[HVC_PAGE_SIZE];
    memset(page, 7, sizeof(page));
    for (unsigned i = 0; i < 8; i++)
        hvc_vm_write(t->vm, REGION_GPA + i * HVC_PAGE_SIZE, page, 4096);
    hvc_sharing_report rep = {.size = sizeof(rep)};
    int r1 = hvc_vm_audit_sharing(t->vm, NULL, &rep);
    char err[512];
    snprintf(err, sizeof(err), "%s", hvc_last_error());
    hvc_audit_options o = HVC_AUDIT_OPTIONS_INIT;
    o.flags = HVC_AUDIT_RESIDENCY_ONLY;
    int r2 = hvc_vm_audit_sharing(t->vm, &o, &rep);
    int r3 = hvc_vm_set_sharing_guard(t->vm, HVC_SHARING_KSM);
    /* Unmerging needs no privilege: without frames, every region. */
    hvc_sharing_report un = {.size = sizeof(un)};
    o.flags = HVC_AUDIT_RESIDENCY_ONLY | HVC_AUDIT_UNMERGE;
    int r4 = hvc_vm_audit_sharing(t->vm, &o, &un);
    n = snprintf(
        msg, sizeof(msg), "%d %d %d %d %u %llu %llu %llu %u %llu|%s", r1, r2,
        r3, r4, rep.flags, (unsigned long long)rep.resident,
        (unsigned long long)rep.pages,
        (unsigned long long)(rep.ksm + rep.mapped_elsewhere + rep.zero),
        un.flags, (unsigned long long)un.unmerged_regions, err);
done:
    if (write(out, msg, (size_t)n) != n)
        _exit(1);
    _exit(0);
}

static void check_unprivileged(int how, const char *expect)
{
    hvt t;
    hvt_open(&t, 0);
    add_region(t.vm, 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        unprivileged_child(&t, how, p[1]);
    }
    close(p[1]);
    char msg[1024] = {0};
    ssize_t n = read(p[0], msg, sizeof(msg) - 1);
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    cr_assert_gt(n, 0, "the child said nothing");
    cr_log_info("%s: %s", how ? "as nobody" : "without CAP_SYS_ADMIN", msg);
    int r1, r2, r3, r4, used;
    unsigned flags, un_flags;
    unsigned long long resident, pages, shared, unmerged;
    cr_assert_eq(sscanf(msg, "%d %d %d %d %u %llu %llu %llu %u %llu|%n", &r1,
                        &r2, &r3, &r4, &flags, &resident, &pages, &shared,
                        &un_flags, &unmerged, &used),
                 10, "%s", msg);
    cr_assert_eq(r1, -EPERM, "%s", msg);
    cr_assert(strstr(msg + used, expect), "%s", msg + used);
    cr_assert_eq(r2, 0, "%s", msg);
    cr_assert_eq(flags, HVC_SHARING_NO_FRAMES);
    cr_assert_eq(pages, HVT_MEM / HVC_PAGE_SIZE + REGION_PAGES);
    cr_assert_eq(resident, 8);
    cr_assert_eq(shared, 0);
    cr_assert_eq(r3, -EPERM, "the guard must refuse to arm");
    cr_assert_eq(r4, 0, "%s", msg);
    cr_assert_eq(un_flags, HVC_SHARING_NO_FRAMES | HVC_SHARING_UNMERGED);
    cr_assert_eq(unmerged, 2);
    hvt_close(&t);
}

Test(audit, without_cap_sys_admin_says_so)
{
    check_unprivileged(0, "CAP_SYS_ADMIN");
}

Test(audit, as_nobody_says_so)
{
    check_unprivileged(1, "CAP_SYS_ADMIN");
}
