/* What starting dirty tracking costs on a VM whose memory the guest has
 * touched, and what the first fetch costs after it: KVM's INITIALLY_SET
 * start (no write-protection walk; pages are re-armed chunk by chunk as
 * fetches report them) against a clean start, which write-protects the
 * whole region at once, measured in the same process on the same region,
 * each after the guest wrote every page again.
 *
 *   ./build/bench/dirty_start [GiB]      (default 1)
 */
#include "bench_util.h"

#include <hvcore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUEST_LOAD 0x8000
#define GUEST_STACK 0x7000
#define GUEST_TABLES 0x100000
#define DATA_IN 0x20000
#define REGION 0x100000000ull /* 4 GiB up, clear of KVM's pages */

static void load(hvc_vm *vm, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.bin", BENCH_GUEST_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        bench_die(path);
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    bench_check_hv(hvc_vm_write(vm, GUEST_LOAD, buf, n), "loading the guest");
}

static void retouch(hvc_vcpu *v)
{
    const hvc_exit *e;
    bench_check_hv(hvc_vcpu_set_reg(v, HVC_X86_RIP, GUEST_LOAD),
                   "resetting RIP");
    bench_check_hv(hvc_vcpu_run(v, &e), "running the guest");
}

/* Starts tracking with @p flags and fetches once: seconds for each. */
static void measure(hvc_memory_region *r, uint32_t flags, uint64_t *bm,
                    size_t bytes, double *start_s, double *fetch_s,
                    uint64_t *count)
{
    hvc_dirty_options o = HVC_DIRTY_OPTIONS_INIT;
    o.flags = flags;
    double t0 = bench_now_s();
    bench_check_hv(hvc_memory_dirty_start(r, &o), "hvc_memory_dirty_start");
    double t1 = bench_now_s();
    bench_check_hv(hvc_memory_dirty_fetch(r, bm, bytes, count),
                   "hvc_memory_dirty_fetch");
    double t2 = bench_now_s();
    bench_check_hv(hvc_memory_dirty_stop(r), "hvc_memory_dirty_stop");
    *start_s = t1 - t0;
    *fetch_s = t2 - t1;
}

int main(int argc, char **argv)
{
    uint64_t gib = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    if (gib == 0 || gib > 64) {
        fprintf(stderr, "usage: %s [GiB, 1..64]\n", argv[0]);
        return 2;
    }
    uint64_t len = gib << 30;
    hvc_hypervisor *hv;
    hvc_vm *vm;
    bench_check_hv(hvc_hypervisor_open("kvm", &hv), "opening KVM");
    bench_check_hv(hvc_vm_create(hv, NULL, &vm), "creating a VM");
    hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
    m.length = 4u << 20;
    bench_check_hv(hvc_vm_add_memory(vm, &m, NULL), "adding RAM");
    m.guest_addr = REGION;
    m.length = len;
    hvc_memory_region *r;
    bench_check_hv(hvc_vm_add_memory(vm, &m, &r), "adding the region");
    uint64_t caps = 0;
    hvc_hypervisor_get_cap(hv, HVC_CAP_DIRTY_TRACKING, &caps);

    /* The guest touches every page, so KVM maps them all and a
     * write-protection walk has something to walk. */
    load(vm, "dirty_touch64");
    uint64_t range[2] = {REGION, len};
    bench_check_hv(hvc_vm_write(vm, DATA_IN, range, sizeof(range)),
                   "writing the range");
    hvc_vcpu *v;
    bench_check_hv(hvc_vcpu_create(vm, 0, &v), "creating a vCPU");
    hvc_vcpu_mode_options mo = HVC_VCPU_MODE_OPTIONS_INIT;
    mo.mode = HVC_X86_MODE_LONG64;
    mo.entry = GUEST_LOAD;
    mo.stack = GUEST_STACK;
    mo.tables_addr = GUEST_TABLES;
    bench_check_hv(hvc_vcpu_set_mode(v, &mo), "setting long mode");
    double t0 = bench_now_s();
    const hvc_exit *e;
    bench_check_hv(hvc_vcpu_run(v, &e), "running the guest");
    printf("guest touched %llu GiB in %.0f ms\n", (unsigned long long)gib,
           (bench_now_s() - t0) * 1e3);

    size_t bytes = hvc_memory_dirty_bitmap_size(r);
    uint64_t *bm = malloc(bytes);
    if (!bm)
        bench_die("malloc");
    enum { N = 5 };
    double s_set[N], f_set[N], s_clean[N], f_clean[N];
    uint64_t c_set = 0, c_clean = 0;
    uint32_t mode = 0;
    for (int i = 0; i < N; i++) {
        /* The guest writes every page again before each start, so each
         * start finds them all mapped writable. */
        retouch(v);
        measure(r, 0, bm, bytes, &s_set[i], &f_set[i], &c_set);
        if (i == 0) {
            hvc_memory_dirty_start(r, NULL);
            mode = hvc_memory_dirty_mode(r);
            hvc_memory_dirty_stop(r);
        }
        retouch(v);
        measure(r, HVC_DIRTY_START_CLEAN, bm, bytes, &s_clean[i], &f_clean[i],
                &c_clean);
    }
    struct bench_stats ss = bench_summarise(s_set, N),
                       fs = bench_summarise(f_set, N),
                       sc = bench_summarise(s_clean, N),
                       fc = bench_summarise(f_clean, N);
    printf("host dirty caps 0x%llx; default start used mode 0x%x%s\n",
           (unsigned long long)caps, mode,
           (mode & HVC_DIRTY_INITIALLY_SET) ? " (INITIALLY_SET)" : "");
    printf("start, default:     %8.3f ms median (%.3f..%.3f); first fetch "
           "%8.3f ms, %llu pages\n",
           ss.median * 1e3, ss.min * 1e3, ss.max * 1e3, fs.median * 1e3,
           (unsigned long long)c_set);
    printf("start, START_CLEAN: %8.3f ms median (%.3f..%.3f); first fetch "
           "%8.3f ms, %llu pages\n",
           sc.median * 1e3, sc.min * 1e3, sc.max * 1e3, fc.median * 1e3,
           (unsigned long long)c_clean);
    printf("ratio default/clean start: %.3f\n",
           sc.median > 0 ? ss.median / sc.median : 0.0);
    free(bm);
    hvc_vm_destroy(vm);
    hvc_hypervisor_close(hv);
    return 0;
}
