/* A malicious guest against the VMM, through the public API on real VMs:
 * an MMIO storm on unclaimed addresses, random accesses to every register
 * of the platform devices (guests/mmio_flood.S, guests/platform_fuzz.S),
 * every malformed descriptor chain against virtio-blk, virtio-rng and
 * both queues of virtio-console, out-of-range and oversized disk requests,
 * and random virtio-mmio register and live ring rewrites (built on the host
 * side with tests/vqueue.c, which is far faster here than a guest driver).
 *
 * Each case checks that the VMM survives and its calls keep working, that
 * the device reports the abuse (an error status in the used ring, or
 * DEVICE_NEEDS_RESET with a configuration interrupt and an error logged
 * through hvc_set_log()), that a reset brings the device back (a good
 * request works afterwards), and that the disk image's hash is unchanged. */
#include "vqueue.h"

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

/* Descriptor flags and virtio-mmio registers (virtio 1.2 2.7.5, 4.2.2). */
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define ST_NEEDS_RESET 0x40
#define ISR_CONFIG 2u
#define QOFF 0x4000u /* vq_init's distance between queues */
#define RAM_END HVT_MEM

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The library's log, collected from whichever thread logs. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned log_errors;
static char log_last[512];

static void on_log(void *opaque, int level, const char *msg)
{
    (void)opaque;
    pthread_mutex_lock(&log_lock);
    if (level == HVC_LOG_ERROR) {
        log_errors++;
        snprintf(log_last, sizeof(log_last), "%s", msg);
    }
    pthread_mutex_unlock(&log_lock);
}

static void log_start(void)
{
    HVT_OK(hvc_set_log(HVC_LOG_ERROR, on_log, NULL));
}

/* Errors logged since the last call, and the last of them in @last. */
static unsigned log_take(char *last, size_t size)
{
    pthread_mutex_lock(&log_lock);
    unsigned n = log_errors;
    log_errors = 0;
    snprintf(last, size, "%s", log_last);
    log_last[0] = '\0';
    pthread_mutex_unlock(&log_lock);
    return n;
}

/* 64-bit FNV-1a of a whole file, and its size. */
static uint64_t file_hash(const char *path, off_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    uint64_t h = 0xcbf29ce484222325ull;
    int c;
    off_t n = 0;
    while ((c = fgetc(f)) != EOF) {
        h = (h ^ (uint8_t)c) * 0x100000001b3ull;
        n++;
    }
    fclose(f);
    if (size)
        *size = n;
    return h;
}

/* ------------------------------------------------------------------ */
/* 1. Unclaimed MMIO: a storm of exits the VMM must keep serving.      */

/* 10^6 accesses, each a full exit to this thread and back: 15 us each on
 * this host (nested KVM) alone, up to 25 us beside another suite, so 15-25
 * s. HVT_MMIO_STORM=<count> overrides it. */
#define STORM_DEFAULT 1000000ull

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
    hvt_load(t.vm, "mmio_flood");
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, &count, sizeof(count)));
    hvc_vcpu_mode_options mo = HVC_VCPU_MODE_OPTIONS_INIT;
    mo.mode = HVC_X86_MODE_LONG64;
    mo.entry = GUEST_LOAD;
    mo.stack = GUEST_STACK;
    mo.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(script_vcpu, &mo));

    const hvc_exit *e;
    uint64_t n = 0;
    double t0 = now_s(), worst = 0, last = t0;
    uint8_t rec[4096];
    size_t len;
    for (;;) {
        HVT_OK(hvc_vcpu_run(script_vcpu, &e));
        if (e->reason != HVC_EXIT_MMIO)
            break;
        cr_assert(e->u.mmio.addr >= MMIO_UNCLAIMED &&
                      e->u.mmio.addr < MMIO_UNCLAIMED + 0x1000 &&
                      e->u.mmio.size == 4,
                  "exit %llu: MMIO at 0x%llx size %u", (unsigned long long)n,
                  (unsigned long long)e->u.mmio.addr, e->u.mmio.size);
        cr_assert_eq(e->u.mmio.is_write, !(n & 1), "exit %llu",
                     (unsigned long long)n);
        n++;
        double now = now_s();
        if (now - last > worst)
            worst = now - last;
        last = now;
        /* the VMM's other calls keep working in the middle of it */
        if (n % 100000 == 0) {
            HVT_OK(hvc_device_save_state(rng, rec, sizeof(rec), &len));
            uint32_t st = 0;
            HVT_OK(hvc_vm_read(t.vm, DATA_IN, &st, 4));
        }
    }
    double secs = now_s() - t0;
    cr_assert_eq(e->reason, HVC_EXIT_PIO, "exit reason %u after %llu accesses",
                 e->reason, (unsigned long long)n);
    cr_assert_eq(e->u.io.port, PORT_DONE);
    cr_assert_eq(*(uint8_t *)e->u.io.data, 0x5c);
    cr_assert_eq(n, count, "%llu exits for %llu accesses",
                 (unsigned long long)n, (unsigned long long)count);
    uint64_t out[2];
    HVT_OK(hvc_vm_read(t.vm, DATA_OUT, out, sizeof(out)));
    cr_assert_eq(out[0], count);
    /* every read nobody completed returned all-ones */
    cr_assert_eq((uint32_t)out[1], (uint32_t)(count / 2 * 0xffffffffull),
                 "reads returned 0x%llx in sum", (unsigned long long)out[1]);
    cr_log_info("%llu unclaimed MMIO exits in %.2f s (%.2f us each, worst "
                "gap %.0f us)",
                (unsigned long long)n, secs, secs * 1e6 / (double)n,
                worst * 1e6);

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

static void run_mode(hvc_vcpu *v)
{
    hvc_vcpu_mode_options mo = HVC_VCPU_MODE_OPTIONS_INIT;
    mo.mode = HVC_X86_MODE_LONG64;
    mo.entry = GUEST_LOAD;
    mo.stack = GUEST_STACK;
    mo.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(v, &mo));
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

#define FUZZ_ROUNDS 40000ull

Test(malicious_guest, platform_registers_random_writes, .timeout = 120)
{
    hvt t;
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

/* ------------------------------------------------------------------ */
/* 3. Malformed descriptor chains against blk, rng and console.        */

/* The device under attack and how to drive it. */
struct target {
    const char *type;
    uint32_t queue; /* the queue attacked: its rings are at qoff */
    uint32_t nqueues;
    char path[64]; /* blk: the disk image */
    hvc_device *dev;
    int in[2]; /* console: its input pipe */
};

static char cons_out[64];
static size_t cons_len;

static void cons_capture(void *opaque, const void *data, size_t len)
{
    (void)opaque;
    if (len > sizeof(cons_out) - cons_len)
        len = sizeof(cons_out) - cons_len;
    memcpy(cons_out + cons_len, data, len);
    cons_len += len;
}

/* Flags for the next virtio-blk target_open() makes. */
static uint32_t blk_flags;

static void target_open(hvt *t, struct target *g, const char *type)
{
    memset(g, 0, sizeof(*g));
    g->type = type;
    vq_vopen(t);
    hvc_virtio_mmio m = {BASE, IRQ, 0};
    if (strcmp(type, "virtio-blk") == 0) {
        close(vq_make_disk(g->path, 64 * 512));
        hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
        o.mmio = m;
        o.path = g->path;
        o.flags = blk_flags;
        HVT_OK(hvc_virtio_blk_create(t->vm, &o, &g->dev));
        g->nqueues = 1;
    } else if (strcmp(type, "virtio-rng") == 0) {
        HVT_OK(hvc_virtio_rng_create(t->vm, &m, NULL, &g->dev));
        g->nqueues = 1;
    } else {
        /* "virtio-console": its transmitq, served on every notify;
         * "virtio-console-rx": its receiveq, served when input waits */
        cr_assert_eq(pipe(g->in), 0);
        hvc_virtio_console_options o = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
        o.mmio = m;
        o.output_fn = cons_capture;
        o.input_fd = g->in[0];
        HVT_OK(hvc_virtio_console_create(t->vm, &o, &g->dev));
        g->nqueues = 2;
        g->queue = strcmp(type, "virtio-console") == 0;
    }
    vq_init(t, g->nqueues);
}

static void target_close(hvt *t, struct target *g)
{
    vq_vclose(t);
    if (g->path[0])
        unlink(g->path);
    if (g->in[0] > 0) {
        close(g->in[0]);
        close(g->in[1]);
    }
}

/* Input the device has not taken: read and dropped (the device is reset
 * and has no receive buffer, so it is not reading). */
static void drain_input(struct target *g)
{
    char junk[64];
    int fl = fcntl(g->in[0], F_GETFL);
    fcntl(g->in[0], F_SETFL, fl | O_NONBLOCK);
    while (read(g->in[0], junk, sizeof(junk)) > 0)
        ;
    fcntl(g->in[0], F_SETFL, fl);
}

/* A good request on a freshly reset device: it must be served. */
static void good_request(hvt *t, struct target *g)
{
    uint32_t qoff = g->queue * QOFF;
    if (strcmp(g->type, "virtio-blk") == 0) {
        vq_blk_request(t, 0, 0 /* IN */, 7, 0x300000, 512);
        vq_publish(t, 0, 0, 0);
        vq_notify_wait(t, 0, 1);
        cr_assert_eq(vq_blk_status(t, 0), 0, "blk read after reset");
        uint8_t b[512];
        HVT_OK(hvc_vm_read(t->vm, 0x300000, b, sizeof(b)));
        cr_assert(b[0] == 7 && b[511] == 7, "sector 7 read back 0x%02x", b[0]);
    } else if (strcmp(g->type, "virtio-rng") == 0) {
        uint8_t zero[64] = {0}, b[64];
        HVT_OK(hvc_vm_write(t->vm, 0x300000, zero, sizeof(zero)));
        vq_put_desc(t, 0, 0, (struct desc){0x300000, 64, F_WRITE, 0});
        vq_publish(t, 0, 0, 0);
        vq_notify_wait(t, 0, 1);
        uint32_t used[2];
        HVT_OK(hvc_vm_read(t->vm, USED + 4, used, 8));
        cr_assert_eq(used[1], 64, "rng used length %u after reset", used[1]);
        HVT_OK(hvc_vm_read(t->vm, 0x300000, b, sizeof(b)));
        cr_assert(memcmp(b, zero, 64), "rng left its buffer zero");
    } else if (g->queue == 0) {
        drain_input(g);
        vq_put_desc(t, 0, 0, (struct desc){0x301000, 64, F_WRITE, 0});
        vq_publish(t, 0, 0, 0);
        struct script s = {.n = 0};
        vq_w32(&s, R_QUEUE_NOTIFY, 0);
        vq_run(t, &s);
        cr_assert_eq(write(g->in[1], "in", 2), 2);
        s.n = 0;
        vq_wait16(&s, USED + 2, 1);
        vq_run(t, &s);
        char got[2];
        uint32_t used[2];
        HVT_OK(hvc_vm_read(t->vm, USED + 4, used, 8));
        HVT_OK(hvc_vm_read(t->vm, 0x301000, got, 2));
        cr_assert(used[1] == 2 && memcmp(got, "in", 2) == 0,
                  "console received %u bytes after reset", used[1]);
    } else {
        cons_len = 0;
        HVT_OK(hvc_vm_write(t->vm, 0x300000, "alive", 5));
        vq_put_desc(t, qoff, 0, (struct desc){0x300000, 5, 0, 0});
        vq_publish(t, qoff, 0, 0);
        vq_notify_wait(t, g->queue, 1);
        cr_assert_eq(cons_len, 5, "console wrote %zu bytes after reset",
                     cons_len);
        cr_assert_arr_eq(cons_out, "alive", 5);
    }
}

/* One malformed chain, published in the attacked queue (rings at qoff). */
struct bad_case {
    const char *name;
    void (*build)(hvt *t, uint32_t qoff);
};

static void put(hvt *t, uint32_t qoff, uint16_t i, uint64_t addr, uint32_t len,
                uint16_t flags, uint16_t next)
{
    vq_put_desc(t, qoff, i, (struct desc){addr, len, flags, next});
}

static void loop2(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 16, 16, F_NEXT, 0);
    vq_publish(t, q, 0, 0);
}

static void self_loop(hvt *t, uint32_t q)
{
    put(t, q, 3, BUF, 16, F_NEXT, 3);
    vq_publish(t, q, 0, 3);
}

static void loop_writable(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 0x100, 16, F_NEXT | F_WRITE, 2);
    put(t, q, 2, BUF + 0x200, 16, F_NEXT | F_WRITE, 1);
    vq_publish(t, q, 0, 0);
}

static void ring_of_all(hvt *t, uint32_t q)
{
    for (uint16_t i = 0; i < QSIZE; i++)
        put(t, q, i, BUF + 0x20u * i, 16, F_NEXT, (uint16_t)((i + 1) % QSIZE));
    vq_publish(t, q, 0, 5);
}

static void far_outside_ram(hvt *t, uint32_t q)
{
    put(t, q, 0, 0x80000000ull, 16, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void at_end_of_ram(hvt *t, uint32_t q)
{
    put(t, q, 0, RAM_END, 1, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void in_mmio_window(hvt *t, uint32_t q)
{
    put(t, q, 0, BASE, 0x100, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void straddles_end(hvt *t, uint32_t q)
{
    put(t, q, 0, RAM_END - 0x800, 0x1000, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void straddles_end_by_one(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, RAM_END - 16, 17, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void second_straddles(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 0x100, 512, F_NEXT | F_WRITE, 2);
    put(t, q, 2, RAM_END - 0x10, 0x20, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void wraps(hvt *t, uint32_t q)
{
    put(t, q, 0, 0xfffffffffffff000ull, 0x2000, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void wraps_to_zero(hvt *t, uint32_t q)
{
    put(t, q, 0, 0xffffffffffffffffull, 2, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void huge_length(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 0xffffffffu, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void huge_writable_length(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, 0x1000, 0x80000000u, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void indirect(hvt *t, uint32_t q)
{
    /* a well-formed indirect table: refused all the same, as the feature
     * was never offered */
    struct desc tbl[2] = {{BUF, 16, F_NEXT, 1}, {BUF + 0x100, 16, F_WRITE, 0}};
    HVT_OK(hvc_vm_write(t->vm, 0x310000, tbl, sizeof(tbl)));
    put(t, q, 0, 0x310000, sizeof(tbl), F_INDIRECT, 0);
    vq_publish(t, q, 0, 0);
}

static void indirect_in_chain(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, 0x310000, 0xfffffff0u, F_INDIRECT | F_NEXT, 2);
    put(t, q, 2, BUF + 0x100, 16, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void head_past_queue(hvt *t, uint32_t q)
{
    vq_publish(t, q, 0, QSIZE);
}

static void head_ffff(hvt *t, uint32_t q)
{
    vq_publish(t, q, 0, 0xffff);
}

static void next_past_queue(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, QSIZE);
    vq_publish(t, q, 0, 0);
}

static void next_ffff_later(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 0x100, 16, F_NEXT | F_WRITE, 0xffff);
    vq_publish(t, q, 0, 0);
}

static void avail_far_ahead(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, 0, 0);
    uint16_t idx = 1000;
    HVT_OK(hvc_vm_write(t->vm, AVAIL + q + 2, &idx, 2));
}

static void avail_just_past(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, 0, 0);
    uint16_t idx = QSIZE + 1;
    HVT_OK(hvc_vm_write(t->vm, AVAIL + q + 2, &idx, 2));
}

static void avail_behind(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, 0, 0);
    uint16_t idx = 0xffff; /* 65535 entries ahead, i.e. one behind */
    HVT_OK(hvc_vm_write(t->vm, AVAIL + q + 2, &idx, 2));
}

static void readable_after_writable(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT | F_WRITE, 1);
    put(t, q, 1, BUF + 0x100, 16, 0, 0);
    vq_publish(t, q, 0, 0);
}

/* Chains well-formed for the transport that no virtio-blk request can be
 * (virtio 1.2 5.2.6: a 16-byte readable header, a writable status). */
static void blk_short_header(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 8, F_NEXT, 1);
    put(t, q, 1, BUF + 0x80, 1, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void blk_no_status(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_NEXT, 1);
    put(t, q, 1, BUF + 0x100, 512, 0, 0);
    vq_publish(t, q, 0, 0);
}

static void blk_status_only(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF + 0x80, 1, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void blk_writable_header(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 16, F_WRITE | F_NEXT, 1);
    put(t, q, 1, BUF + 0x80, 1, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static void blk_empty_buffers(hvt *t, uint32_t q)
{
    put(t, q, 0, BUF, 0, F_NEXT, 1);
    put(t, q, 1, BUF + 0x80, 0, F_WRITE, 0);
    vq_publish(t, q, 0, 0);
}

static const struct bad_case blk_bad_cases[] = {
    {"header of 8 bytes", blk_short_header},
    {"no writable status byte", blk_no_status},
    {"only a status byte", blk_status_only},
    {"header in a writable buffer", blk_writable_header},
    {"zero-length header and status", blk_empty_buffers},
};

static const struct bad_case bad_cases[] = {
    {"two-descriptor loop", loop2},
    {"descriptor linked to itself", self_loop},
    {"loop in the writable part", loop_writable},
    {"chain through every descriptor and back", ring_of_all},
    {"buffer far outside RAM", far_outside_ram},
    {"buffer at the end of RAM", at_end_of_ram},
    {"buffer in the device's own MMIO window", in_mmio_window},
    {"buffer straddling the end of RAM", straddles_end},
    {"writable buffer one byte past the end", straddles_end_by_one},
    {"third buffer straddling the end", second_straddles},
    {"address + length wrapping", wraps},
    {"address + length wrapping to 0", wraps_to_zero},
    {"length 0xffffffff", huge_length},
    {"writable length 2 GiB", huge_writable_length},
    {"indirect descriptor (not negotiated)", indirect},
    {"indirect flag inside a chain", indirect_in_chain},
    {"head index = queue size", head_past_queue},
    {"head index 0xffff", head_ffff},
    {"next index = queue size", next_past_queue},
    {"next index 0xffff further down", next_ffff_later},
    {"available index 1000 ahead", avail_far_ahead},
    {"available index queue size + 1 ahead", avail_just_past},
    {"available index one behind", avail_behind},
    {"readable after writable", readable_after_writable},
};
#define NBAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

/* Publishes each malformed chain in turn, expects the device to fail and
 * say so, then resets it and expects a good request to work. */
static void attack_with(const char *type, const struct bad_case *cases,
                        size_t ncases)
{
    hvt t;
    struct target g;
    log_start();
    target_open(&t, &g, type);
    off_t size0 = 0, size1 = 0;
    uint64_t hash0 = g.path[0] ? file_hash(g.path, &size0) : 0;
    const uint32_t qoff = g.queue * QOFF;
    char msg[512];
    log_take(msg, sizeof(msg));
    for (size_t k = 0; k < ncases; k++) {
        const struct bad_case *c = &cases[k];
        c->build(&t, qoff);
        if (g.queue == 0 && g.in[0] > 0) /* the receiveq takes input */
            cr_assert_eq(write(g.in[1], "x", 1), 1);
        struct script s = {.n = 0};
        vq_w32(&s, R_QUEUE_NOTIFY, g.queue);
        vq_run(&t, &s);
        uint32_t st = 0;
        for (int i = 0; i < 4000 && !(st & ST_NEEDS_RESET); i++) {
            usleep(2500);
            st = vq_status_reg(&t);
        }
        cr_assert(st & ST_NEEDS_RESET, "%s, %s: no DEVICE_NEEDS_RESET (0x%x)",
                  type, c->name, st);
        cr_assert(st & (ISR_CONFIG << 16),
                  "%s, %s: no configuration interrupt (0x%x)", type, c->name,
                  st);
        uint16_t used;
        HVT_OK(hvc_vm_read(t.vm, USED + qoff + 2, &used, 2));
        cr_assert_eq(used, 0, "%s, %s: %u buffers used", type, c->name, used);
        unsigned nlog = log_take(msg, sizeof(msg));
        cr_assert_eq(nlog, 1, "%s, %s: %u errors logged (last: %s)", type,
                     c->name, nlog, msg);
        cr_assert(strstr(msg, hvc_device_name(g.dev)) &&
                      strstr(msg, "needs reset"),
                  "%s, %s: logged \"%s\"", type, c->name, msg);
        /* further notifies change nothing until the reset */
        s.n = 0;
        vq_w32(&s, R_QUEUE_NOTIFY, g.queue);
        vq_run(&t, &s);
        /* the VMM's calls keep working */
        HVT_OK(hvc_vm_pause(t.vm));
        uint8_t rec[8192];
        size_t len;
        HVT_OK(hvc_device_save_state(g.dev, rec, sizeof(rec), &len));
        HVT_OK(hvc_device_load_state(g.dev, rec, len));
        HVT_OK(hvc_vm_resume(t.vm));
        /* the driver resets the device and starts over; every other time
         * the VMM resets the VM's devices first */
        if (k % 2)
            HVT_OK(hvc_vm_reset_devices(t.vm));
        memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
        vq_init(&t, g.nqueues);
        good_request(&t, &g);
        cr_assert_eq(log_take(msg, sizeof(msg)), 0,
                     "%s, %s: an error logged after the reset: %s", type,
                     c->name, msg);
        if (g.path[0])
            cr_assert_eq(file_hash(g.path, &size1), hash0,
                         "%s, %s: the disk image changed", type, c->name);
        /* and again, so that the next case starts from empty rings */
        memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
        vq_init(&t, g.nqueues);
    }
    if (g.path[0])
        cr_assert_eq(size1, size0);
    target_close(&t, &g);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
}

static void attack(const char *type)
{
    attack_with(type, bad_cases, NBAD);
}

Test(malicious_guest, blk_malformed_chains)
{
    attack("virtio-blk");
    attack_with("virtio-blk", blk_bad_cases,
                sizeof(blk_bad_cases) / sizeof(blk_bad_cases[0]));
}

Test(malicious_guest, console_receive_malformed_chains)
{
    attack("virtio-console-rx");
}

Test(malicious_guest, rng_malformed_chains)
{
    attack("virtio-rng");
}

Test(malicious_guest, console_malformed_chains)
{
    attack("virtio-console");
}

/* ------------------------------------------------------------------ */
/* 4. Out-of-range disk requests: per-request errors, nothing touched. */

#define T_IN 0
#define T_OUT 1
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define S_IOERR 1
#define DISK_SECTORS 64 /* target_open's image: sector s holds bytes s */

struct range_case {
    const char *name;
    uint32_t type;
    uint64_t sector; /* of the header; for discard/write-zeroes the
                        segment's */
    uint32_t len;    /* data bytes; for discard/write-zeroes num sectors */
    uint32_t copies; /* data descriptors of len bytes each (0: one) */
};

static const struct range_case range_cases[] = {
    {"read at the capacity", T_IN, DISK_SECTORS, 512, 0},
    {"read straddling the capacity", T_IN, DISK_SECTORS - 1, 1024, 0},
    {"read of a partial sector past the end", T_IN, DISK_SECTORS - 1, 513, 0},
    {"read of the whole disk and one sector", T_IN, 0, DISK_SECTORS * 512 + 512,
     0},
    {"read at sector 2^64-1", T_IN, UINT64_MAX, 512, 0},
    {"read at sector 2^55 (offset wraps to 0)", T_IN, 1ull << 55, 512, 0},
    {"read at 2^55-1 (offset wraps past 0)", T_IN, (1ull << 55) - 1, 1024, 0},
    {"read into 4 aliased 1 MiB buffers", T_IN, 0, 1u << 20, 4},
    {"write at the capacity", T_OUT, DISK_SECTORS, 512, 0},
    {"write straddling the capacity", T_OUT, DISK_SECTORS - 1, 1024, 0},
    {"write of a partial sector past the end", T_OUT, DISK_SECTORS - 1, 513, 0},
    {"write of the whole disk and one sector", T_OUT, 0,
     DISK_SECTORS * 512 + 512, 0},
    {"write at sector 2^64-4", T_OUT, UINT64_MAX - 3, 2048, 0},
    {"write at sector 2^55 (offset wraps to 0)", T_OUT, 1ull << 55, 512, 0},
    {"write at 2^55-1 (offset wraps past 0)", T_OUT, (1ull << 55) - 1, 1024, 0},
    {"write from 4 aliased 1 MiB buffers", T_OUT, 0, 1u << 20, 4},
    {"discard at the capacity", T_DISCARD, DISK_SECTORS, 1, 0},
    {"discard straddling the capacity", T_DISCARD, DISK_SECTORS - 2, 4, 0},
    {"discard of 2^32-1 sectors", T_DISCARD, 0, UINT32_MAX, 0},
    {"discard at 2^64-2 (end wraps)", T_DISCARD, UINT64_MAX - 1, 4, 0},
    {"discard at sector 2^55", T_DISCARD, 1ull << 55, 1, 0},
    {"write-zeroes at the capacity", T_WRITE_ZEROES, DISK_SECTORS, 1, 0},
    {"write-zeroes straddling the capacity", T_WRITE_ZEROES, DISK_SECTORS - 2,
     4, 0},
    {"write-zeroes of 2^32-1 sectors", T_WRITE_ZEROES, 0, UINT32_MAX, 0},
    {"write-zeroes of the whole disk and one", T_WRITE_ZEROES, 0,
     DISK_SECTORS + 1, 0},
    {"write-zeroes at 2^64-2 (end wraps)", T_WRITE_ZEROES, UINT64_MAX - 1, 4,
     0},
    {"write-zeroes at sector 2^55", T_WRITE_ZEROES, 1ull << 55, 1, 0},
};
#define NRANGE (sizeof(range_cases) / sizeof(range_cases[0]))

/* Builds request @c in descriptors 0.. and publishes it as entry @idx. */
static void range_request(hvt *t, const struct range_case *c, uint16_t idx)
{
    struct {
        uint32_t type, reserved;
        uint64_t sector;
    } h = {c->type, 0, c->type == T_IN || c->type == T_OUT ? c->sector : 0};
    HVT_OK(hvc_vm_write(t->vm, BUF, &h, sizeof(h)));
    uint8_t poison = 0xee;
    HVT_OK(hvc_vm_write(t->vm, BUF + 0x80, &poison, 1));
    uint16_t n = 0;
    put(t, 0, n, BUF, 16, F_NEXT, (uint16_t)(n + 1));
    n++;
    uint16_t w = c->type == T_IN ? F_WRITE : 0;
    if (c->type == T_DISCARD || c->type == T_WRITE_ZEROES) {
        struct {
            uint64_t sector;
            uint32_t num, flags;
        } seg = {c->sector, c->len, 0};
        HVT_OK(hvc_vm_write(t->vm, 0x2f0000, &seg, sizeof(seg)));
        put(t, 0, n, 0x2f0000, sizeof(seg), F_NEXT, (uint16_t)(n + 1));
        n++;
    } else {
        for (uint32_t k = 0; k < (c->copies ? c->copies : 1); k++, n++)
            put(t, 0, n, 0x300000, c->len, (uint16_t)(F_NEXT | w),
                (uint16_t)(n + 1));
    }
    put(t, 0, n, BUF + 0x80, 1, F_WRITE, 0);
    vq_publish(t, 0, idx, 0);
}

Test(malicious_guest, blk_out_of_range_requests)
{
    hvt t;
    struct target g;
    log_start();
    target_open(&t, &g, "virtio-blk");
    off_t size0, size1;
    uint64_t hash0 = file_hash(g.path, &size0);
    char msg[512];
    /* what the data buffers hold: a write that went through would show */
    uint8_t *ram = hvc_memory_region_hva(t.ram);
    memset(ram + 0x300000, 0xa5, 0x100000);
    for (size_t k = 0; k < NRANGE; k++) {
        const struct range_case *c = &range_cases[k];
        range_request(&t, c, (uint16_t)k);
        vq_notify_wait(&t, 0, (uint16_t)(k + 1));
        uint8_t st = vq_blk_status(&t, 0);
        cr_assert_eq(st, S_IOERR, "%s: status %u, expected IOERR", c->name, st);
        uint32_t used[2];
        HVT_OK(hvc_vm_read(t.vm, USED + 4 + 8 * (k % QSIZE), used, 8));
        cr_assert_eq(used[0], 0, "%s: used id %u", c->name, used[0]);
        cr_assert_eq(used[1], 1,
                     "%s: used length %u (a failed request "
                     "returns only its status)",
                     c->name, used[1]);
        uint32_t reg = vq_status_reg(&t);
        cr_assert_eq(reg & 0xff, 0xf, "%s: device status 0x%x", c->name, reg);
        cr_assert_eq(file_hash(g.path, &size1), hash0,
                     "%s: the disk image changed", c->name);
        cr_assert_eq(size1, size0, "%s: the image is %lld bytes", c->name,
                     (long long)size1);
    }
    cr_assert_eq(log_take(msg, sizeof(msg)), 0, "logged: %s", msg);
    /* a read buffer is left as it was: 0xa5, nothing read into it */
    cr_assert(ram[0x300000] == 0xa5 && ram[0x3fffff] == 0xa5,
              "a failed read wrote into its buffer");
    /* good requests on the same ring, then after a reset */
    vq_blk_request(&t, 0, T_IN, DISK_SECTORS - 1, 0x300000, 512);
    vq_publish(&t, 0, NRANGE, 0);
    vq_notify_wait(&t, 0, NRANGE + 1);
    cr_assert_eq(vq_blk_status(&t, 0), 0);
    cr_assert_eq(ram[0x300000], DISK_SECTORS - 1);
    memset(ram + DESC, 0, 2 * QOFF);
    vq_init(&t, 1);
    good_request(&t, &g);
    cr_assert_eq(file_hash(g.path, NULL), hash0);
    target_close(&t, &g);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
}

/* Discard and write-zeroes with more segments than the device's limit
 * (max_discard_seg and max_write_zeroes_seg are 1): a hostile guest could
 * otherwise hand the worker millions of segments, one system call each,
 * and every pause, save or reset waits for that request to end. */
Test(malicious_guest, blk_too_many_discard_segments)
{
    hvt t;
    struct target g;
    target_open(&t, &g, "virtio-blk");
    off_t size0, size1;
    uint64_t hash0 = file_hash(g.path, &size0);
    uint8_t *ram = hvc_memory_region_hva(t.ram);
    static const uint32_t types[] = {T_DISCARD, T_WRITE_ZEROES};
    for (uint16_t k = 0; k < 4; k++) {
        uint32_t type = types[k % 2];
        struct {
            uint32_t type, reserved;
            uint64_t sector;
        } h = {type, 0, 0};
        HVT_OK(hvc_vm_write(t.vm, BUF, &h, sizeof(h)));
        put(&t, 0, 0, BUF, 16, F_NEXT, 1);
        uint16_t n = 1;
        if (k < 2) {
            /* two good segments: sectors 1 and 2 */
            struct {
                uint64_t sector;
                uint32_t num, flags;
            } seg[2] = {{1, 1, 0}, {2, 1, 0}};
            HVT_OK(hvc_vm_write(t.vm, 0x2f0000, seg, sizeof(seg)));
            put(&t, 0, n, 0x2f0000, sizeof(seg), F_NEXT, 2);
            n++;
        } else {
            /* six aliased 1 MiB tables of sector-0 segments: 393216 */
            memset(ram + 0x300000, 0, 0x100000);
            for (; n < 7; n++)
                put(&t, 0, n, 0x300000, 0x100000, F_NEXT, (uint16_t)(n + 1));
        }
        put(&t, 0, n, BUF + 0x80, 1, F_WRITE, 0);
        vq_publish(&t, 0, k, 0);
        double t0 = now_s();
        vq_notify_wait(&t, 0, (uint16_t)(k + 1));
        double served = now_s() - t0;
        HVT_OK(hvc_vm_pause(t.vm));
        HVT_OK(hvc_vm_resume(t.vm));
        cr_assert_eq(
            vq_blk_status(&t, 0), 2, "%s with %s: status %u, expected UNSUPP",
            type == T_DISCARD ? "discard" : "write-zeroes",
            k < 2 ? "two segments" : "393216 segments", vq_blk_status(&t, 0));
        cr_assert_lt(served, 10.0, "the request took %.1f s", served);
        cr_assert_eq(file_hash(g.path, &size1), hash0, "the image changed");
    }
    cr_assert_eq(size1, size0);
    memset(ram + DESC, 0, 2 * QOFF);
    vq_init(&t, 1);
    good_request(&t, &g);
    target_close(&t, &g);
}

/* A notify storm: the guest rings virtio-blk's doorbell 10^6 times with
 * requests in the ring, then with the device failed. Every request is
 * served once, the VMM pauses and resumes meanwhile, and the image keeps
 * its hash. */
#define STORM_NOTIFIES 1000000ull

static void notify_storm(hvt *t, uint64_t count)
{
    uint64_t in[3] = {count, BASE + R_QUEUE_NOTIFY, 0};
    hvt_load(t->vm, "notify_storm");
    HVT_OK(hvc_vm_write(t->vm, DATA_IN, in, sizeof(in)));
    run_mode(script_vcpu);
    cr_assert_eq(hvt_run_done(script_vcpu), 0x5c);
    hvt_load(t->vm, "mmio_script");
}

Test(malicious_guest, blk_notify_storm)
{
    hvt t;
    struct target g;
    log_start();
    target_open(&t, &g, "virtio-blk");
    uint64_t hash0 = file_hash(g.path, NULL);
    /* two reads published, not notified: the storm's first ring serves
     * them, the rest find nothing */
    vq_blk_request(&t, 0, T_IN, 5, 0x300000, 512);
    vq_blk_request(&t, 1, T_IN, 6, 0x301000, 512);
    vq_publish(&t, 0, 0, 0);
    vq_publish(&t, 0, 1, 3);
    double t0 = now_s();
    notify_storm(&t, STORM_NOTIFIES);
    double secs = now_s() - t0;
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_resume(t.vm));
    struct script s = {.n = 0};
    vq_wait16(&s, USED + 2, 2);
    vq_run(&t, &s);
    cr_assert_eq(vq_blk_status(&t, 0), 0);
    cr_assert_eq(vq_blk_status(&t, 1), 0);
    uint8_t a, b;
    HVT_OK(hvc_vm_read(t.vm, 0x300000, &a, 1));
    HVT_OK(hvc_vm_read(t.vm, 0x301000, &b, 1));
    cr_assert(a == 5 && b == 6, "read back %u and %u", a, b);
    /* nothing more was used: each request once */
    usleep(20000);
    uint16_t used;
    HVT_OK(hvc_vm_read(t.vm, USED + 2, &used, 2));
    cr_assert_eq(used, 2, "%u used elements for 2 requests", used);
    cr_log_info("%llu notifies in %.2f s", (unsigned long long)STORM_NOTIFIES,
                secs);

    /* the device failed by a bad chain: the storm finds it dead */
    put(&t, 0, 6, RAM_END, 16, 0, 0);
    vq_publish(&t, 0, 2, 6);
    notify_storm(&t, STORM_NOTIFIES / 4);
    cr_assert(vq_status_reg(&t) & ST_NEEDS_RESET);
    char msg[512];
    cr_assert_eq(log_take(msg, sizeof(msg)), 1, "last: %s", msg);
    memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
    vq_init(&t, 1);
    good_request(&t, &g);
    cr_assert_eq(file_hash(g.path, NULL), hash0, "the image changed");
    target_close(&t, &g);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
}

/* Read-only memory (a ROM: HVC_MEMORY_READONLY) is no target for a
 * device's writes: a writable buffer there fails the device like one
 * outside RAM, and the ROM keeps its bytes. With the caller's ROM mapped
 * PROT_READ on the host, a write through a host pointer would kill the
 * VMM instead. */
#define ROM_BASE 0x800000u
#define ROM_LEN 0x10000u

static void rom_case(const char *type, bool caller_ro)
{
    hvt t;
    struct target g;
    log_start();
    target_open(&t, &g, type);
    uint8_t *img = NULL;
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.flags = HVC_MEMORY_READONLY;
    mo.guest_addr = ROM_BASE;
    mo.length = ROM_LEN;
    uint8_t pattern[ROM_LEN];
    for (uint32_t i = 0; i < ROM_LEN; i++)
        pattern[i] = (uint8_t)(i * 13 + 1);
    hvc_memory_region *rom;
    if (caller_ro) {
        img = mmap(NULL, ROM_LEN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(img, MAP_FAILED);
        memcpy(img, pattern, ROM_LEN);
        cr_assert_eq(mprotect(img, ROM_LEN, PROT_READ), 0);
        mo.host_addr = img;
        HVT_OK(hvc_vm_add_memory(t.vm, &mo, &rom));
    } else {
        HVT_OK(hvc_vm_add_memory(t.vm, &mo, &rom));
        memcpy(hvc_memory_region_hva(rom), pattern, ROM_LEN);
    }
    uint64_t hash0 = g.path[0] ? file_hash(g.path, NULL) : 0;
    const uint32_t qoff = g.queue * QOFF;
    if (strcmp(type, "virtio-blk") == 0) {
        /* a read of sector 9 into the ROM, its status byte there too */
        vq_blk_request(&t, 0, T_IN, 9, ROM_BASE + 0x1000, 512);
        put(&t, 0, 2, ROM_BASE + 0x80, 1, F_WRITE, 0);
    } else {
        put(&t, qoff, 0, ROM_BASE + 0x2000, 256, F_WRITE, 0);
    }
    vq_publish(&t, qoff, 0, 0);
    if (g.queue == 0 && g.in[0] > 0)
        cr_assert_eq(write(g.in[1], "rom", 3), 3);
    struct script s = {.n = 0};
    vq_w32(&s, R_QUEUE_NOTIFY, g.queue);
    vq_run(&t, &s);
    uint32_t st = 0;
    for (int i = 0; i < 4000 && !(st & ST_NEEDS_RESET); i++) {
        usleep(2500);
        st = vq_status_reg(&t);
    }
    cr_assert(st & ST_NEEDS_RESET,
              "%s: a writable buffer in ROM was taken "
              "(status 0x%x)",
              type, st);
    uint16_t used;
    HVT_OK(hvc_vm_read(t.vm, USED + qoff + 2, &used, 2));
    cr_assert_eq(used, 0, "%s: %u buffers used", type, used);
    const uint8_t *now = caller_ro ? img : hvc_memory_region_hva(rom);
    cr_assert_arr_eq(now, pattern, ROM_LEN, "%s: the ROM changed", type);
    char msg[512];
    cr_assert_eq(log_take(msg, sizeof(msg)), 1, "%s: last: %s", type, msg);
    memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
    vq_init(&t, g.nqueues);
    good_request(&t, &g);
    if (g.path[0])
        cr_assert_eq(file_hash(g.path, NULL), hash0, "the image changed");
    target_close(&t, &g);
    hvc_set_log(HVC_LOG_ERROR, NULL, NULL);
    if (img)
        munmap(img, ROM_LEN);
}

/* A used ring in ROM is refused when the queue is made ready. */
static void rom_used_ring(bool caller_ro)
{
    hvt t;
    struct target g;
    target_open(&t, &g, "virtio-rng");
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.flags = HVC_MEMORY_READONLY;
    mo.guest_addr = ROM_BASE;
    mo.length = ROM_LEN;
    uint8_t *img = NULL;
    if (caller_ro) {
        img =
            mmap(NULL, ROM_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(img, MAP_FAILED);
        mo.host_addr = img;
    }
    hvc_memory_region *rom;
    HVT_OK(hvc_vm_add_memory(t.vm, &mo, &rom));
    struct script s = {.n = 0};
    vq_w32(&s, R_STATUS, 0);
    vq_w32(&s, R_STATUS, 3);
    vq_w32(&s, 0x038, QSIZE);
    vq_w32(&s, 0x080, DESC);
    vq_w32(&s, 0x090, AVAIL);
    vq_w32(&s, 0x0a0, ROM_BASE);
    vq_w32(&s, 0x044, 1);
    int ready = vq_r32(&s, 0x044);
    int st = vq_r32(&s, R_STATUS);
    vq_run(&t, &s);
    cr_assert_eq(s.ops[ready].value, 0,
                 "a queue with its used ring in ROM "
                 "became ready");
    cr_assert(s.ops[st].value & ST_NEEDS_RESET);
    memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
    vq_init(&t, g.nqueues);
    good_request(&t, &g);
    target_close(&t, &g);
    if (img)
        munmap(img, ROM_LEN);
}

Test(malicious_guest, device_writes_into_rom_fail)
{
    rom_used_ring(false);
    rom_used_ring(true);
    static const char *const types[] = {"virtio-blk", "virtio-rng",
                                        "virtio-console-rx"};
    for (int k = 0; k < 3; k++) {
        rom_case(types[k], false);
        rom_case(types[k], true);
    }
}

/* ------------------------------------------------------------------ */
/* 5. Random virtio-mmio register accesses with live queues.           */

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static const uint16_t mmio_regs[] = {
    0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034,
    0x038, 0x044, 0x050, 0x050, 0x050, 0x060, 0x064, 0x070, 0x070, 0x080,
    0x084, 0x090, 0x094, 0x0a0, 0x0a4, 0x0fc, 0x100, 0x108, 0x13c};

/* A value a hostile driver might write: a status, a size, an address in
 * the ring area or out of RAM, or noise. Addresses stay at or above
 * 0x200000: below are the script guest, its ops and its page tables,
 * which a read request the device honours could overwrite. */
static uint64_t hostile_value(uint64_t *s)
{
    uint64_t r = xs(s);
    switch (r % 16) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 0xf;
    case 3: return 0xb;
    case 4: return 0x4f;
    case 5: return QSIZE;
    case 6: return 256;
    case 7: return 0x8000;
    case 8: return 0xffffffffu;
    case 9: return DESC + (r >> 8) % 2 * QOFF;
    case 10: return AVAIL + (r >> 8) % 2 * QOFF;
    case 11: return USED + (r >> 8) % 2 * QOFF;
    case 12: return 0x200000 + (r >> 8) % 0x200000;
    case 13: return RAM_END - (r >> 8) % 64;
    default: return xs(s);
    }
}

/* One script of @n random accesses: registers of every size, and live
 * rewrites of the descriptor table and rings under the device. */
static void random_script(struct script *sc, uint64_t *s, int n)
{
    static const uint32_t sizes[] = {4, 4, 4, 4, 4, 1, 2, 8};
    sc->n = 0;
    for (int i = 0; i < n; i++) {
        uint64_t r = xs(s);
        struct op *o = &sc->ops[sc->n++];
        if (r % 8 == 0) { /* the rings, as the device reads them */
            uint64_t a = DESC + (xs(s) % (2 * QOFF)) / 8 * 8;
            *o = (struct op){a, hostile_value(s), r & 16 ? 8 : 2, OP_WRITE};
            continue;
        }
        uint64_t off =
            (r >> 8) % 4 ? mmio_regs[(r >> 16) %
                                     (sizeof(mmio_regs) / sizeof(mmio_regs[0]))]
                         : (r >> 16) % HVC_VIRTIO_MMIO_SIZE;
        uint32_t size = sizes[(r >> 32) % 8];
        off &= ~(uint64_t)(size - 1);
        *o = (struct op){BASE + off, hostile_value(s), size,
                         (r >> 40) % 4 ? OP_WRITE : OP_READ};
    }
}

#define REG_RUNS 300
#define REG_OPS 100

static void register_fuzz(const char *type, uint64_t seed)
{
    hvt t;
    struct target g;
    target_open(&t, &g, type);
    off_t size0 = 0, size1 = 0;
    uint64_t hash0 = g.path[0] ? file_hash(g.path, &size0) : 0;
    uint64_t s = seed;
    uint8_t rec[8192];
    size_t len;
    double t0 = now_s();
    for (int run = 0; run < REG_RUNS; run++) {
        /* every other run starts from a working device */
        if (run % 2 == 0) {
            memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
            vq_init(&t, g.nqueues);
        }
        struct script sc;
        random_script(&sc, &s, REG_OPS);
        vq_run(&t, &sc);
        /* the VMM's calls keep working, and the device's own state loads
         * back into it */
        HVT_OK(hvc_vm_pause(t.vm));
        HVT_OK(hvc_device_save_state(g.dev, rec, sizeof(rec), &len));
        HVT_OK(hvc_device_load_state(g.dev, rec, len));
        HVT_OK(hvc_vm_resume(t.vm));
    }
    double secs = now_s() - t0;
    /* a reset recovers it */
    memset(hvc_memory_region_hva(t.ram) + DESC, 0, 2 * QOFF);
    vq_init(&t, g.nqueues);
    good_request(&t, &g);
    cr_log_info("%s: %d random register and ring accesses in %.2f s", type,
                REG_RUNS * REG_OPS, secs);
    if (g.path[0]) {
        /* random chains may have written to a writable image, but never
         * past its end, and never to a read-only one */
        uint64_t hash1 = file_hash(g.path, &size1);
        cr_assert_eq(size1, size0, "the image grew to %lld bytes",
                     (long long)size1);
        if (blk_flags & HVC_VIRTIO_BLK_READONLY)
            cr_assert_eq(hash1, hash0, "a read-only image changed");
        else if (hash1 != hash0)
            cr_log_info("random chains wrote to the writable image");
    }
    target_close(&t, &g);
}

Test(malicious_guest, blk_random_registers)
{
    register_fuzz("virtio-blk", 0x243f6a8885a308d3ull);
    register_fuzz("virtio-blk", 0x452821e638d01377ull);
}

Test(malicious_guest, blk_readonly_random_registers)
{
    blk_flags = HVC_VIRTIO_BLK_READONLY;
    register_fuzz("virtio-blk", 0xbe5466cf34e90c6cull);
    register_fuzz("virtio-blk", 0xc0ac29b7c97c50ddull);
}

Test(malicious_guest, rng_random_registers)
{
    register_fuzz("virtio-rng", 0x13198a2e03707344ull);
}

Test(malicious_guest, console_random_registers)
{
    register_fuzz("virtio-console", 0xa4093822299f31d0ull);
}
