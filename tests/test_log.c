/* The log hook (hvc_set_log): a real VM on /dev/kvm whose virtio-rng
 * driver (guests/mmio_script.S, driven through tests/vqueue.c) hands the
 * device a queue it must refuse; the device's error reaches the hook with
 * its level and text, on the vCPU thread, and nowhere else. Without a hook
 * the library writes nothing. Criterion runs each test in its own process,
 * so each starts with the library's defaults. */
#include "vqueue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct captured {
    pthread_mutex_t lock;
    int count;
    int level;
    char text[512];
    pthread_t thread;
    int set_log_from_callback; /* hvc_set_log()'s result inside the hook */
    int try_set_log;
};

static void capture(void *opaque, int level, const char *message)
{
    struct captured *c = opaque;
    pthread_mutex_lock(&c->lock);
    c->count++;
    c->level = level;
    snprintf(c->text, sizeof(c->text), "%s", message);
    c->thread = pthread_self();
    if (c->try_set_log)
        c->set_log_from_callback = hvc_set_log(HVC_LOG_DEBUG, NULL, NULL);
    pthread_mutex_unlock(&c->lock);
}

/* After each script's device accesses, the guest writes MARK, whose handler
 * notes the thread it runs on (a vCPU's handlers run on the thread that
 * runs the vCPU: the caller of hvc_vcpu_run(), or, on a backend that binds
 * vCPUs to threads, the library's own thread for it, see hvcore/vcpu.h)
 * and how many messages the hook had received by then. */
#define MARK 0xd1000000u
static struct {
    pthread_t thread;
    int count;
    int seen;
    struct captured *c;
} mark;

static int on_mark(void *o, hvc_vcpu *v, uint64_t off, void *d, uint32_t s,
                   int w)
{
    (void)o, (void)v, (void)off, (void)d, (void)s, (void)w;
    mark.thread = pthread_self();
    mark.seen++;
    if (mark.c) {
        pthread_mutex_lock(&mark.c->lock);
        mark.count = mark.c->count;
        pthread_mutex_unlock(&mark.c->lock);
    }
    return 0;
}

/* The driver's initialisation with queue 0 of @p qsize entries; returns
 * the device status after it sets QueueReady. */
static uint32_t init_with_queue_size(hvt *t, uint32_t qsize)
{
    struct script s = {.n = 0};
    vq_w32(&s, 0x070, 0);
    vq_w32(&s, 0x070, 1);
    vq_w32(&s, 0x070, 3);
    vq_w32(&s, 0x024, 1);
    vq_w32(&s, 0x020, 1); /* VIRTIO_F_VERSION_1 */
    vq_w32(&s, 0x070, 0xb);
    vq_w32(&s, 0x030, 0);
    vq_w32(&s, 0x038, qsize);
    vq_w32(&s, 0x080, DESC);
    vq_w32(&s, 0x090, AVAIL);
    vq_w32(&s, 0x0a0, USED);
    vq_w32(&s, 0x044, 1);
    int st = vq_r32(&s, 0x070);
    s.ops[s.n++] = (struct op){MARK, 1, 4, OP_WRITE};
    vq_run(t, &s);
    return (uint32_t)s.ops[st].value;
}

static hvc_device *rng(hvt *t)
{
    vq_vopen(t);
    hvc_virtio_mmio m = {BASE, IRQ, 0};
    hvc_device *dev;
    HVT_OK(hvc_virtio_rng_create(t->vm, &m, NULL, &dev));
    HVT_OK(hvc_vm_add_io_handler(t->vm, HVC_IO_MMIO, MARK, 4, on_mark, NULL));
    return dev;
}

Test(log, device_error_reaches_the_hook)
{
    static struct captured c = {.lock = PTHREAD_MUTEX_INITIALIZER};
    hvt t;
    hvc_device *dev = rng(&t);
    HVT_OK(hvc_set_log(HVC_LOG_ERROR, capture, &c));
    mark.c = &c;

    cr_assert_eq(init_with_queue_size(&t, 8) & 0x40, 0, "a good queue");
    cr_assert_eq(c.count, 0, "nothing logged yet: \"%s\"", c.text);

    uint32_t st = init_with_queue_size(&t, 3);
    cr_assert(st & 0x40, "DEVICE_NEEDS_RESET (status 0x%x)", st);
    pthread_mutex_lock(&c.lock);
    cr_assert_eq(c.count, 1, "one message, got %d", c.count);
    cr_assert_eq(c.level, HVC_LOG_ERROR);
    char want[256];
    snprintf(want, sizeof(want),
             "%s: device error, needs reset: queue 0 size 3 is not a power "
             "of two in 1..",
             hvc_device_name(dev));
    cr_assert(strncmp(c.text, want, strlen(want)) == 0, "\"%s\"", c.text);
    cr_assert_eq(strchr(c.text, '\n'), NULL, "one line, no newline");
    /* MMIO is handled inside hvc_vcpu_run(), on the thread that runs the
     * vCPU: the message came from the thread the guest's next access
     * (MARK) was handled on, and before that access. */
    cr_assert_eq(mark.seen, 2);
    cr_assert(pthread_equal(c.thread, mark.thread), "the vCPU thread");
    cr_assert_eq(mark.count, 1, "logged before the guest's next access");
    pthread_mutex_unlock(&c.lock);

    /* NEEDS_RESET stays until a reset, and is reported once */
    struct script s = {.n = 0};
    vq_w32(&s, 0x044, 1);
    vq_run(&t, &s);
    cr_assert_eq(c.count, 1, "the same failure is not reported twice");

    /* silent again: a second failure after a reset reaches nobody */
    HVT_OK(hvc_set_log(HVC_LOG_DEBUG, NULL, NULL));
    cr_assert(init_with_queue_size(&t, 0) & 0x40);
    cr_assert_eq(c.count, 1, "no hook, no message: \"%s\"", c.text);
    vq_vclose(&t);
}

Test(log, silent_by_default)
{
    /* Everything the library could print goes to a file in place of the
     * process's stdout and stderr. */
    char path[] = "/tmp/hvt-log-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), err = dup(2);
    cr_assert(out >= 0 && err >= 0);
    dup2(fd, 1);
    dup2(fd, 2);

    hvt t;
    rng(&t);
    uint32_t st = init_with_queue_size(&t, 3);
    vq_vclose(&t);

    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
    cr_assert(st & 0x40, "the device failed (status 0x%x)", st);
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    cr_assert_eq(n, 0, "the library printed: \"%s\"", buf);
    close(fd);
}

Test(log, levels_and_reentry)
{
    static struct captured c = {.lock = PTHREAD_MUTEX_INITIALIZER};
    HVT_ERR(hvc_set_log(0, capture, &c), -EINVAL);
    HVT_ERR(hvc_set_log(HVC_LOG_DEBUG + 1, capture, &c), -EINVAL);
    /* a NULL callback needs no level: it only silences */
    HVT_OK(hvc_set_log(12345, NULL, NULL));
    /* the ABI numbers */
    cr_assert_eq(HVC_LOG_ERROR, 1);
    cr_assert_eq(HVC_LOG_WARN, 2);
    cr_assert_eq(HVC_LOG_INFO, 3);
    cr_assert_eq(HVC_LOG_DEBUG, 4);

    /* the callback may not replace itself: that would wait for itself */
    hvt t;
    rng(&t);
    c.try_set_log = 1;
    HVT_OK(hvc_set_log(HVC_LOG_DEBUG, capture, &c));
    cr_assert(init_with_queue_size(&t, 3) & 0x40);
    cr_assert_eq(c.count, 1);
    cr_assert_eq(c.set_log_from_callback, -EDEADLK);
    cr_assert(strstr(c.text, "needs reset"), "\"%s\"", c.text);
    HVT_OK(hvc_set_log(HVC_LOG_ERROR, NULL, NULL));
    vq_vclose(&t);
}

/* ---- the event thread's wait failing ---- */

/* The descriptors of epoll instances this process holds, as a bit set. */
static void eventpolls(unsigned char *set, int max)
{
    memset(set, 0, (size_t)max);
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        char link[300], target[64];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0 && fd < max) {
            target[n] = '\0';
            set[fd] = strcmp(target, "anon_inode:[eventpoll]") == 0;
        }
    }
    closedir(d);
}

static int victim_fd, replacement_fd;

/* On the event thread: puts a pipe where its epoll descriptor was, so the
 * loop's next wait fails (EINVAL: not an epoll descriptor). */
static void sabotage(void *opaque, int fd, uint32_t events)
{
    (void)opaque, (void)events;
    char c;
    cr_assert_eq(read(fd, &c, 1), 1);
    dup2(replacement_fd, victim_fd);
}

Test(log, event_thread_wait_failure_is_logged)
{
    static struct captured c = {.lock = PTHREAD_MUTEX_INITIALIZER};
    enum { MAX = 1024 };
    static unsigned char before[MAX], after[MAX];
    hvt t;
    hvt_open(&t, 0);
    HVT_OK(hvc_set_log(HVC_LOG_ERROR, capture, &c));
    int p[2], spare[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(pipe(spare), 0);
    replacement_fd = spare[0];
    /* the first watch starts the event thread and its epoll instance */
    eventpolls(before, MAX);
    HVT_OK(hvc_vm_watch_fd(t.vm, p[0], HVC_FD_READABLE, sabotage, NULL));
    eventpolls(after, MAX);
    victim_fd = -1;
    for (int fd = 0; fd < MAX; fd++)
        if (after[fd] && !before[fd])
            victim_fd = fd;
    cr_assert_geq(victim_fd, 0, "no new epoll descriptor");
    cr_assert_eq(c.count, 0);

    cr_assert_eq(write(p[1], "x", 1), 1);
    for (int i = 0; i < 400; i++) {
        pthread_mutex_lock(&c.lock);
        int n = c.count;
        pthread_mutex_unlock(&c.lock);
        if (n)
            break;
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    pthread_mutex_lock(&c.lock);
    cr_assert_eq(c.count, 1, "the failed wait was not logged");
    cr_assert_eq(c.level, HVC_LOG_ERROR);
    cr_assert_str_eq(c.text, "VM event thread: waiting for descriptors "
                             "failed (invalid argument); watched "
                             "descriptors are no longer served");
    cr_assert(!pthread_equal(c.thread, pthread_self()), "the event thread");
    pthread_mutex_unlock(&c.lock);
    /* destroying the VM closes what is at victim_fd now (spare[0]) */
    hvt_close(&t);
    close(p[0]);
    close(p[1]);
    close(spare[1]);
}
