/* A malicious guest against the VMM, through the public API on real VMs:
 * an MMIO storm on unclaimed addresses, random accesses to every register
 * of the platform devices (guests/mmio_flood.S, guests/platform_fuzz.S),
 * every malformed descriptor chain against virtio-blk, virtio-rng and
 * both queues of virtio-console, out-of-range and oversized disk requests,
 * and random virtio-mmio register and live ring rewrites (built on the host
 * side with tests/vqueue.c, which is far faster here than a guest driver).
 * This file has the MMIO storm and the platform registers; the virtio cases
 * are in test_malicious_chains.c and test_malicious_virtio.c, their shared
 * helpers in malicious_util.c.
 *
 * Each case checks that the VMM survives and its calls keep working, that
 * the device reports the abuse (an error status in the used ring, or
 * DEVICE_NEEDS_RESET with a configuration interrupt and an error logged
 * through hvc_set_log()), that a reset brings the device back (a good
 * request works afterwards), and that the disk image's hash is unchanged. */
#include "malicious_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* 1. Unclaimed MMIO: a storm of exits the VMM must keep serving.      */

/* 10^6 accesses, each a full exit to this thread and back: 15 us each on
 * this host (nested KVM) alone, up to 25 us beside another suite, so 15-25
 * s. Under hvf on tests/hvf_host an exit costs ~60 us (two KVM_RUNs, the
 * layer's KVM_TRANSLATEs and event read, each a vCPU load on this PVM
 * host), so the storm runs in rounds of STORM_ROUND accesses, every one
 * checked, until 10^6 or STORM_BUDGET_S seconds, and at least STORM_MIN
 * must be served. HVT_MMIO_STORM=<count> overrides the 10^6. */
#define STORM_DEFAULT 1000000ull
#define STORM_ROUND 50000ull
#define STORM_MIN 200000ull
#define STORM_BUDGET_S 45.0

/* One round of @p count accesses; asserts each exit and the guest's
 * report. @p done: the accesses served before it. */
static void storm_round(hvt *t, hvc_device *rng, uint64_t count,
                        uint64_t done, double *worst)
{
    hvt_load(t->vm, "mmio_flood");
    HVT_OK(hvc_vm_write(t->vm, DATA_IN, &count, sizeof(count)));
    hvc_vcpu_mode_options mo = HVC_VCPU_MODE_OPTIONS_INIT;
    mo.mode = HVC_X86_MODE_LONG64;
    mo.entry = GUEST_LOAD;
    mo.stack = GUEST_STACK;
    mo.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(script_vcpu, &mo));
    const hvc_exit *e;
    uint64_t n = 0;
    double last = now_s();
    uint8_t rec[4096];
    size_t len;
    for (;;) {
        HVT_OK(hvc_vcpu_run(script_vcpu, &e));
        if (e->reason != HVC_EXIT_MMIO)
            break;
        cr_assert(e->u.mmio.addr >= MMIO_UNCLAIMED &&
                      e->u.mmio.addr < MMIO_UNCLAIMED + 0x1000 &&
                      e->u.mmio.size == 4,
                  "exit %llu: MMIO at 0x%llx size %u",
                  (unsigned long long)(done + n),
                  (unsigned long long)e->u.mmio.addr, e->u.mmio.size);
        cr_assert_eq(e->u.mmio.is_write, !(n & 1), "exit %llu",
                     (unsigned long long)(done + n));
        n++;
        double now = now_s();
        if (now - last > *worst)
            *worst = now - last;
        last = now;
        /* the VMM's other calls keep working in the middle of it */
        if ((done + n) % 100000 == 0) {
            HVT_OK(hvc_device_save_state(rng, rec, sizeof(rec), &len));
            uint32_t st = 0;
            HVT_OK(hvc_vm_read(t->vm, DATA_IN, &st, 4));
        }
    }
    cr_assert_eq(e->reason, HVC_EXIT_PIO, "exit reason %u after %llu accesses",
                 e->reason, (unsigned long long)(done + n));
    cr_assert_eq(e->u.io.port, PORT_DONE);
    cr_assert_eq(*(uint8_t *)e->u.io.data, 0x5c);
    cr_assert_eq(n, count, "%llu exits for %llu accesses",
                 (unsigned long long)n, (unsigned long long)count);
    uint64_t out[2];
    HVT_OK(hvc_vm_read(t->vm, DATA_OUT, out, sizeof(out)));
    cr_assert_eq(out[0], count);
    /* every read nobody completed returned all-ones */
    cr_assert_eq((uint32_t)out[1], (uint32_t)(count / 2 * 0xffffffffull),
                 "reads returned 0x%llx in sum", (unsigned long long)out[1]);
}

Test(malicious_guest, unclaimed_mmio_storm, .timeout = 120)
{
    hvt t;
    vq_vopen(&t);
    hvc_virtio_mmio m = {BASE, IRQ, 0};
    hvc_device *rng;
    HVT_OK(hvc_virtio_rng_create(t.vm, &m, NULL, &rng));
    vq_init(&t, 1);

    uint64_t count = STORM_DEFAULT;
    const char *env = getenv("HVT_MMIO_STORM");
    if (env)
        count = strtoull(env, NULL, 0);
    uint64_t n = 0;
    double t0 = now_s(), worst = 0;
    while (n < count && now_s() - t0 < STORM_BUDGET_S) {
        uint64_t k = count - n < STORM_ROUND ? count - n : STORM_ROUND;
        storm_round(&t, rng, k, n, &worst);
        n += k;
    }
    double secs = now_s() - t0;
    cr_log_info("%llu unclaimed MMIO exits in %.2f s (%.2f us each, worst "
                "gap %.0f us)",
                (unsigned long long)n, secs, secs * 1e6 / (double)n,
                worst * 1e6);
    uint64_t min = count < STORM_MIN ? count : STORM_MIN;
    cr_assert_geq(n, min, "only %llu MMIO exits served in %.0f s",
                  (unsigned long long)n, STORM_BUDGET_S);

    /* the VM and its devices still serve: a virtio-rng request */
    hvt_load(t.vm, "mmio_script");
    vq_put_desc(&t, 0, 0, (struct desc){0x300000, 64, F_WRITE, 0});
    vq_publish(&t, 0, 0, 0);
    vq_notify_wait(&t, 0, 1);
    uint32_t used[2];
    HVT_OK(hvc_vm_read(t.vm, USED + 4, used, 8));
    cr_assert_eq(used[1], 64);
    vq_vclose(&t);
}

/* ------------------------------------------------------------------ */
/* 2. Random accesses to every UART, CMOS and i8042 register.          */

static pthread_mutex_t uart_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t uart_bytes;
static uint8_t uart_last;

static void uart_out(void *opaque, const void *data, size_t len)
{
    (void)opaque;
    pthread_mutex_lock(&uart_lock);
    uart_bytes += len;
    if (len)
        uart_last = ((const uint8_t *)data)[len - 1];
    pthread_mutex_unlock(&uart_lock);
}

/* Bytes arriving on the UART's line all through the fuzz, racing the
 * guest's FIFO, loopback and divisor changes. */
static atomic_bool feeding;
static uint64_t fed;
static int feed_error;

static void *feed_uart(void *arg)
{
    hvc_device *uart = arg;
    uint8_t b = 0;
    while (atomic_load(&feeding)) {
        int r = hvc_serial_receive(uart, &b, 1);
        if (r < 0) { /* asserted on the test's thread */
            feed_error = r;
            break;
        }
        fed += (uint64_t)r;
        b++;
        usleep(50);
    }
    return NULL;
}

/* Rounds per seed; HVT_FUZZ_ROUNDS=<count> overrides it. */
static uint64_t FUZZ_ROUNDS = 40000;

Test(malicious_guest, platform_registers_random_writes, .timeout = 120)
{
    hvt t;
    if (getenv("HVT_FUZZ_ROUNDS"))
        FUZZ_ROUNDS = strtoull(getenv("HVT_FUZZ_ROUNDS"), NULL, 0);
    hvt_open(&t, 0);
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.output_fn = uart_out;
    hvc_device *uart, *cmos, *kbd, *p80;
    HVT_OK(hvc_serial_create(t.vm, &so, &uart));
    HVT_OK(hvc_cmos_create(t.vm, &cmos));
    HVT_OK(hvc_i8042_create(t.vm, &kbd));
    HVT_OK(hvc_port80_create(t.vm, &p80));
    hvc_vcpu *v;
    HVT_OK(hvc_vcpu_create(t.vm, 0, &v));
    const uint64_t seeds[] = {0x9e3779b97f4a7c15ull, 0x1234567887654321ull,
                              0xdeadbeefcafef00dull};
    uint64_t resets = 0, unclaimed = 0;
    atomic_store(&feeding, true);
    pthread_t feeder;
    cr_assert_eq(pthread_create(&feeder, NULL, feed_uart, uart), 0);
    double t0 = now_s();
    for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
        hvt_load(t.vm, "platform_fuzz");
        uint64_t in[2] = {seeds[s], FUZZ_ROUNDS};
        HVT_OK(hvc_vm_write(t.vm, DATA_IN, in, sizeof(in)));
        run_mode(v);
        const hvc_exit *e;
        for (;;) {
            HVT_OK(hvc_vcpu_run(v, &e));
            if (e->reason == HVC_EXIT_RESET) {
                resets++; /* 0xfe to port 0x64: the guest runs on */
                continue;
            }
            cr_assert_eq(e->reason, HVC_EXIT_PIO, "seed %zu: exit reason %u", s,
                         e->reason);
            if (e->u.io.port == PORT_DONE)
                break;
            /* a wide access straddling a device's ports: unclaimed */
            unclaimed++;
        }
        cr_assert_eq(*(uint8_t *)e->u.io.data, 0x5c);
        uint64_t done;
        HVT_OK(hvc_vm_read(t.vm, DATA_OUT, &done, 8));
        cr_assert_eq(done, FUZZ_ROUNDS);
        /* the devices' calls keep working */
        uint8_t rec[4096];
        size_t len;
        hvc_device *all[] = {uart, cmos, kbd, p80};
        for (size_t d = 0; d < 4; d++) {
            int r = hvc_device_save_state(all[d], rec, sizeof(rec), &len);
            cr_assert(r == 0 || r == -ENOTSUP, "%s: save_state %d (%s)",
                      hvc_device_name(all[d]), r, hvc_last_error());
            if (r == 0)
                HVT_OK(hvc_device_load_state(all[d], rec, len));
        }
    }
    double secs = now_s() - t0;
    atomic_store(&feeding, false);
    pthread_join(feeder, NULL);
    cr_assert_eq(feed_error, 0, "hvc_serial_receive during the fuzz: %d",
                 feed_error);
    cr_log_info("%llu random platform accesses in %.2f s: %llu resets, %llu "
                "unclaimed, %llu UART bytes out, %llu in",
                (unsigned long long)(3 * FUZZ_ROUNDS), secs,
                (unsigned long long)resets, (unsigned long long)unclaimed,
                (unsigned long long)uart_bytes, (unsigned long long)fed);
    cr_assert_gt(resets, 0, "the fuzz never pulled the reset line");

    /* a device reset puts every register back */
    HVT_OK(hvc_vm_reset_devices(t.vm));
    hvt_load(t.vm, "platform_check");
    run_mode(v);
    cr_assert_eq(hvt_run_done(v), 0x5c);
    uint8_t got[22];
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, got, sizeof(got)));
    /* 4 MiB of RAM: 640 KiB base (0x280), 3072 KiB from 1 MiB (0xc00) */
    static const uint8_t want[22] = {
        0x60, 0x01, 0x00, 0x00, 0x00, 0xb0, 0x00, 0x5a, /* UART */
        0x26, 0x02, 0x00, 0x80,                         /* CMOS A-D */
        0x80, 0x02, 0x00, 0x0c, 0x00, 0x0c, 0x00, 0x00, /* memory size */
        0x04, 0xff};                                    /* i8042, 0x80 */
    static const char *const names[22] = {
        "UART LSR",     "UART IIR",  "UART IER",  "UART LCR",
        "UART MCR",     "UART MSR",  "UART SCR",  "UART SCR written",
        "CMOS A",       "CMOS B",    "CMOS C",    "CMOS D",
        "CMOS 0x15",    "CMOS 0x16", "CMOS 0x17", "CMOS 0x18",
        "CMOS 0x30",    "CMOS 0x31", "CMOS 0x34", "CMOS 0x35",
        "i8042 status", "port 0x80"};
    for (int i = 0; i < 22; i++)
        cr_expect_eq(got[i], want[i], "%s after reset: 0x%02x, expected 0x%02x",
                     names[i], got[i], want[i]);
    pthread_mutex_lock(&uart_lock);
    cr_assert_eq(uart_last, 'K', "the UART's output after reset: 0x%02x",
                 uart_last);
    pthread_mutex_unlock(&uart_lock);
    hvt_close(&t);
}
