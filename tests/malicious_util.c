/* Helpers shared by the malicious-guest suites (malicious_util.h). */
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

double now_s(void)
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

void log_start(void)
{
    HVT_OK(hvc_set_log(HVC_LOG_ERROR, on_log, NULL));
}

/* Errors logged since the last call, and the last of them in @last. */
unsigned log_take(char *last, size_t size)
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
uint64_t file_hash(const char *path, off_t *size)
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

void run_mode(hvc_vcpu *v)
{
    hvc_vcpu_mode_options mo = HVC_VCPU_MODE_OPTIONS_INIT;
    mo.mode = HVC_X86_MODE_LONG64;
    mo.entry = GUEST_LOAD;
    mo.stack = GUEST_STACK;
    mo.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(v, &mo));
}

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
uint32_t blk_flags;

void target_open(hvt *t, struct target *g, const char *type)
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
        /* discard and write-zeroes, so that they are served (a writable
         * image offers both) */
        if (!(blk_flags & HVC_VIRTIO_BLK_READONLY))
            g->features = 1u << 13 | 1u << 14;
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
    vq_init_features(t, g->nqueues, g->features);
}

void target_close(hvt *t, struct target *g)
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
void good_request(hvt *t, struct target *g)
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

void put(hvt *t, uint32_t qoff, uint16_t i, uint64_t addr, uint32_t len,
         uint16_t flags, uint16_t next)
{
    vq_put_desc(t, qoff, i, (struct desc){addr, len, flags, next});
}
