/* Hand-over (hvc_vm_handover_send/receive, issue 14): the counting,
 * memory-checksumming guest moves to a forked child that maps the same
 * memfd pages (same inode, same physical frames in /proc/self/pagemap)
 * and counts on with the next number; a receiver that dies or refuses
 * (a pipe, a short file, a region past the end of its file, as a hostile
 * relay substitutes them) leaves the old side counting; memory that is no
 * file is refused before the pause; a virtio-blk request published
 * before the hand-over is served once, by the new side, on the same open
 * disk file. */
#include "migtest.h"
#include "vqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES 8

/* What a process sees of its guest RAM: the memfd's identity and the
 * physical frames of a few pattern pages (read first, so they are mapped
 * here). */
struct ram_id {
    uint64_t dev, ino;
    uint64_t pfn[SAMPLES];
};

static int ram_id(hvc_vm *vm, struct ram_id *id)
{
    hvc_memory_region *reg;
    if (hvc_vm_find_memory(vm, MIGT_PATTERN, &reg) < 0)
        return -1;
    struct stat st;
    if (fstat(hvc_memory_region_fd(reg), &st) < 0)
        return -1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    int pm = open("/proc/self/pagemap", O_RDONLY);
    if (pm < 0)
        return -1;
    for (int i = 0; i < SAMPLES; i++) {
        void *hva;
        if (hvc_vm_gpa_to_hva(vm, MIGT_PATTERN + 4096u * i, 4096, &hva) < 0)
            break;
        (void)*(volatile uint8_t *)hva;
        uint64_t e = 0;
        if (pread(pm, &e, 8, (off_t)((uintptr_t)hva / 4096 * 8)) != 8)
            e = 0;
        /* bit 63: present; bits 0-54: the frame (zero unless root) */
        id->pfn[i] = (e >> 63) ? e & ((1ull << 55) - 1) : 0;
    }
    close(pm);
    return 0;
}

/* The new process: receives, reports its RAM's identity, counts five more
 * on every vCPU, then reports its console. */
static void receiver(int sock, int report)
{
    migt r;
    if (migt_handover_receive(&r, sock) != 0) {
        fprintf(stderr, "receiver: %s\n", migt_last_error());
        _exit(20);
    }
    struct ram_id id = {0};
    if (ram_id(r.vm, &id) < 0)
        _exit(22);
    uint64_t most = 0;
    for (uint32_t i = 0; i < r.nr_vcpus; i++)
        if (migt_count(&r, i) > most)
            most = migt_count(&r, i);
    if (migt_run_until(&r, most + 5) || migt_check(&r, most + 5))
        _exit(21);
    migt_write_all(report, &id, sizeof(id));
    migt_write_all(report, r.console, r.console_len);
    _exit(0);
}

static void assert_counts(const char *text, uint64_t *last)
{
    uint64_t want = 1;
    const char *p = text;
    while (*p) {
        char line[64];
        int len = snprintf(line, sizeof(line), "count %llu\r\n",
                           (unsigned long long)want);
        cr_assert_eq(strncmp(p, line, (size_t)len), 0,
                     "console at count %llu: \"%.20s\"",
                     (unsigned long long)want, p);
        p += len;
        want++;
    }
    *last = want - 1;
}

static void to_child(uint32_t nr_vcpus)
{
    int sv[2], rep[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(pipe(rep), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        close(rep[0]);
        receiver(sv[1], rep[1]);
    }
    close(sv[1]);
    close(rep[1]);

    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, nr_vcpus, NULL);
    migt_start_runners(&m, run);
    migt_sleep_ms(30);
    struct ram_id mine = {0};
    cr_assert_eq(ram_id(m.vm, &mine), 0);
    hvc_handover_stats st = HVC_HANDOVER_STATS_INIT;
    HVT_OK(hvc_vm_handover_send(m.vm, sv[0], NULL, &st));
    fprintf(stderr,
            "hand-over %u vCPU%s: pause %llu us (vCPU stop %llu, save %llu, "
            "transfer %llu, map %llu, load %llu, confirm wait %llu), %u "
            "regions, %u device fds, %llu stream bytes, %llu bytes of RAM "
            "not copied\n",
            nr_vcpus, nr_vcpus > 1 ? "s" : "", (unsigned long long)st.pause_us,
            (unsigned long long)st.vcpu_stop_us, (unsigned long long)st.save_us,
            (unsigned long long)st.transfer_us, (unsigned long long)st.map_us,
            (unsigned long long)st.load_us,
            (unsigned long long)st.confirm_wait_us, st.regions, st.device_fds,
            (unsigned long long)st.stream_bytes,
            (unsigned long long)st.memory_bytes);
    cr_assert_eq(st.completed, 1);
    cr_assert_eq(st.regions, 1);
    cr_assert_eq(st.memory_bytes, HVT_MEM);
    cr_assert_gt(st.stream_bytes, 0);
    cr_assert_lt(st.stream_bytes, 1u << 20, "guest pages went in the stream");
    cr_assert_leq(st.save_us + st.transfer_us + st.vcpu_stop_us, st.pause_us);
    cr_assert(hvc_vm_is_paused(m.vm));
    HVT_ERR(hvc_vm_resume(m.vm), -EPERM);

    struct ram_id theirs;
    static char cons[sizeof(m.console)];
    cr_assert_eq(migt_read_all(rep[0], &theirs, sizeof(theirs)), sizeof(theirs),
                 "the receiver reported nothing");
    size_t clen = migt_read_all(rep[0], cons, sizeof(cons) - 1);
    cons[clen] = 0;
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "receiver status 0x%x", status);
    /* The same file, and the same physical pages. */
    cr_assert_eq(theirs.dev, mine.dev);
    cr_assert_eq(theirs.ino, mine.ino, "another memfd on the new side");
    if (geteuid() == 0)
        for (int i = 0; i < SAMPLES; i++) {
            cr_assert_neq(mine.pfn[i], 0, "page %d not present here", i);
            cr_assert_eq(theirs.pfn[i], mine.pfn[i],
                         "page %d: frame 0x%llx here, 0x%llx there", i,
                         (unsigned long long)mine.pfn[i],
                         (unsigned long long)theirs.pfn[i]);
        }
    /* The consoles, end to end, count on without a gap or a repeat. */
    static char all[2 * sizeof(m.console)];
    snprintf(all, sizeof(all), "%s%s", m.console, cons);
    uint64_t last, src_last;
    /* where the old side stopped: its last complete line (the hand-over
     * may cut one short, which the new side finishes) */
    src_last = 0;
    for (const char *p = m.console; (p = strstr(p, "count ")); p++) {
        char *end;
        unsigned long long v = strtoull(p + 6, &end, 10);
        if (strncmp(end, "\r\n", 2) == 0)
            src_last = v;
    }
    assert_counts(all, &last);
    cr_assert_gt(src_last, 0);
    cr_assert_geq(last, src_last + 5);
    close(sv[0]);
    close(rep[0]);
}

Test(handover, one_vcpu_to_child)
{
    to_child(1);
}

Test(handover, four_vcpus_to_child)
{
    to_child(4);
}

/* A failure before the confirmation: the old side runs on and counts. */
static void assert_runs_on(migt *m, migt_runner *run)
{
    cr_assert(!hvc_vm_is_paused(m->vm));
    migt_assert_counts_on(m, "the old side");
    migt_stop_runners(m, run);
    uint64_t n = 0;
    for (uint32_t i = 0; i < m->nr_vcpus; i++)
        if (migt_count(m, i) + 1 > n)
            n = migt_count(m, i) + 1;
    cr_assert_eq(migt_run_until(m, n), 0);
    cr_assert_eq(migt_check(m, n), 0);
    migt_close(m);
}

/* --- a hostile relay --------------------------------------------------- */

struct sender {
    hvc_vm *vm;
    int fd;
    int r;
    char why[512];
    hvc_handover_stats st;
    pthread_t t;
};

static void *do_send(void *arg)
{
    struct sender *s = arg;
    s->st = (hvc_handover_stats)HVC_HANDOVER_STATS_INIT;
    s->r = hvc_vm_handover_send(s->vm, s->fd, NULL, &s->st);
    snprintf(s->why, sizeof(s->why), "%s", hvc_last_error());
    return NULL;
}

/* What the sender wrote: the descriptors and the stream up to END. */
struct capture {
    uint8_t pkt[16];
    int fds[16];
    size_t nfds;
    uint8_t *stream;
    size_t len;
    size_t fds_at; /* stream offset of the FDS section's header */
};

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Reads the packet, then the stream up to and including section @p last
 * (the FDS section ends what is sent before the pause). */
static void capture(int fd, struct capture *c, uint16_t last)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 16)];
    } u;
    struct iovec iov = {c->pkt, sizeof(c->pkt)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    m.msg_control = u.buf;
    m.msg_controllen = sizeof(u.buf);
    cr_assert_eq(recvmsg(fd, &m, 0), 16);
    cr_assert_eq(memcmp(c->pkt, HVC_HANDOVER_MAGIC, 8), 0);
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    cr_assert_not_null(h);
    c->nfds = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    memcpy(c->fds, CMSG_DATA(h), c->nfds * sizeof(int));
    c->stream = malloc(1 << 20);
    cr_assert_eq(migt_read_all(fd, c->stream, 80), 80);
    c->len = 80;
    for (;;) {
        uint8_t *s = c->stream + c->len;
        cr_assert_eq(migt_read_all(fd, s, 24), 24);
        uint16_t id;
        memcpy(&id, s, 2);
        uint64_t len = get64(s + 8);
        cr_assert_lt(c->len + 24 + len, 1u << 20);
        if (id == 9)
            c->fds_at = c->len;
        cr_assert_eq(migt_read_all(fd, s + 24, len), len);
        c->len += 24 + len;
        if (id == last)
            break;
    }
}

static void replay(int fd, const struct capture *c)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 16)];
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov = {(void *)c->pkt, sizeof(c->pkt)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    m.msg_control = u.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * c->nfds);
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * c->nfds);
    memcpy(CMSG_DATA(h), c->fds, sizeof(int) * c->nfds);
    cr_assert_eq(sendmsg(fd, &m, 0), 16);
    migt_write_all(fd, c->stream, c->len);
}

static int quiet_uart(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)opaque, (void)user, (void)len;
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    return hvc_serial_create(vm, &so, NULL);
}

enum forgery { PIPE_FD, SHORT_FILE, PAST_END, PLAIN_RESTORE };

/* The old side hands over through a relay that forges one thing; the
 * receiver refuses with a message naming it, and the old side, told so,
 * runs on. */
static void hostile(enum forgery f, const char *want)
{
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 1, NULL);
    migt_start_runners(&m, run);
    migt_sleep_ms(10);
    int a[2], b[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    struct sender s = {.vm = m.vm, .fd = a[0]};
    cr_assert_eq(pthread_create(&s.t, NULL, do_send, &s), 0);
    struct capture c = {0};
    capture(a[1], &c, 9);
    cr_assert_eq(c.nfds, 1, "one region, no device descriptors");
    cr_assert_neq(c.fds_at, 0, "no FDS section");
    int extra = -1;
    if (f == PIPE_FD) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        close(p[1]);
        close(c.fds[0]);
        c.fds[0] = extra = p[0];
    } else if (f == SHORT_FILE) {
        int fd = memfd_create("short", MFD_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, HVT_MEM / 2), 0);
        close(c.fds[0]);
        c.fds[0] = extra = fd;
    } else if (f == PAST_END) {
        /* The region's offset in the file moves one page on, so the
         * region reaches past the file's end; the CRC is made good. */
        uint8_t *sec = c.stream + c.fds_at;
        uint64_t off = 4096;
        memcpy(sec + 24 + 8 + 16, &off, 8);
        uint32_t crc = migt_crc32c(0, sec, 20);
        crc = migt_crc32c(crc, sec + 24, get64(sec + 8));
        memcpy(sec + 20, &crc, 4);
    }
    hvc_vm *vm = NULL;
    int r;
    if (f == PLAIN_RESTORE) {
        /* The stream alone, to an ordinary restore, then to a migration
         * receive (which answers on the socket). */
        migt_write_all(b[0], c.stream, c.len);
        r = hvc_vm_restore_fd(m.hv, b[1], NULL, &vm);
        cr_assert_eq(r, -EPROTO, "%d: %s", r, hvc_last_error());
        close(b[0]);
        close(b[1]);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
        migt_write_all(b[0], c.stream, c.len);
    } else {
        replay(b[0], &c);
    }
    /* here, or in a remote destination under a backend that allows one
     * VM per process (m holds it) */
    r = migt_receive_vm(m.hv, b[1], f != PLAIN_RESTORE, &vm);
    fprintf(stderr, "refused: %s\n", migt_last_error());
    cr_assert_lt(r, 0);
    cr_assert_null(vm);
    cr_assert_not_null(strstr(migt_last_error(), want), "\"%s\" lacks \"%s\"",
                       migt_last_error(), want);
    /* The refusal (and its reason) goes back to the old side. */
    static uint8_t ack[1024];
    shutdown(b[1], SHUT_WR);
    size_t n = migt_read_all(b[0], ack, sizeof(ack));
    cr_assert_gt(n, 0, "the receiver sent no refusal");
    if (f == PLAIN_RESTORE) /* a migration refusal is no hand-over answer */
        close(a[1]);
    else
        migt_write_all(a[1], ack, n);
    pthread_join(s.t, NULL);
    cr_assert_lt(s.r, 0);
    cr_assert_eq(s.st.completed, 0);
    fprintf(stderr, "old side: %s\n", s.why);
    cr_assert_not_null(strstr(s.why, "runs on"), "%s", s.why);
    if (f != PLAIN_RESTORE) { /* with the receiver's reason */
        cr_assert_not_null(strstr(s.why, "refused"), "%s", s.why);
        cr_assert_not_null(strstr(s.why, want), "%s", s.why);
    }
    assert_runs_on(&m, run);
    for (size_t i = 0; i < c.nfds; i++)
        if (c.fds[i] != extra)
            close(c.fds[i]);
    free(c.stream);
    close(a[0]);
    close(b[0]);
    close(b[1]);
    if (f != PLAIN_RESTORE)
        close(a[1]);
}

Test(handover, hostile_pipe_for_memory)
{
    hostile(PIPE_FD, "a pipe");
}

Test(handover, hostile_short_file)
{
    hostile(SHORT_FILE, "short of offset");
}

Test(handover, hostile_region_past_end_of_file)
{
    hostile(PAST_END, "short of offset 0x1000");
}

Test(handover, stream_refused_by_a_plain_restore)
{
    hostile(PLAIN_RESTORE, "hand-over stream");
}

/* Caller memory (a private anonymous mapping) is refused before the
 * pause: the guest never stops. */
Test(handover, private_memory_refused_before_the_pause)
{
    hvt_require_kvm();
    static migt m;
    memset(&m, 0, sizeof(m));
    HVT_OK(hvc_hypervisor_open("kvm", &m.hv));
    HVT_OK(hvc_vm_create(m.hv, NULL, &m.vm));
    void *mem = mmap(NULL, HVT_MEM, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(mem, MAP_FAILED);
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = HVT_MEM;
    mo.host_addr = mem;
    HVT_OK(hvc_vm_add_memory(m.vm, &mo, NULL));
    hvt_load(m.vm, "counter64");
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    HVT_OK(hvc_serial_create(m.vm, &so, NULL));
    m.nr_vcpus = 1;
    m.vcpu[0] = hvt_vcpu(m.vm, 0, HVC_X86_MODE_LONG64, 0);
    HVT_OK(hvc_vcpu_set_reg(m.vcpu[0], HVC_X86_RDI, 0));
    migt_runner run[1];
    migt_start_runners(&m, run);
    migt_sleep_ms(10);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    hvc_handover_stats st = HVC_HANDOVER_STATS_INIT;
    HVT_ERR(hvc_vm_handover_send(m.vm, sv[0], NULL, &st), -ENOTSUP);
    cr_assert_not_null(strstr(hvc_last_error(), "private anonymous memory"),
                       "%s", hvc_last_error());
    cr_assert_eq(st.pause_us, 0, "the guest was paused");
    /* nothing reached the socket */
    uint8_t x;
    cr_assert_eq(recv(sv[1], &x, 1, MSG_DONTWAIT), -1);
    cr_assert_eq(errno, EAGAIN);
    assert_runs_on(&m, run);
    munmap(mem, HVT_MEM);
    close(sv[0]);
    close(sv[1]);
}

/* Caller memory that is a file mapped shared (a memfd, two pages into
 * it) is passed with its offset: the new VM maps the same file there and
 * the guest counts on. */
Test(handover, caller_shared_file_mapping)
{
    hvt_require_kvm();
    static migt m;
    memset(&m, 0, sizeof(m));
    HVT_OK(hvc_hypervisor_open("kvm", &m.hv));
    HVT_OK(hvc_vm_create(m.hv, NULL, &m.vm));
    int mfd = memfd_create("caller-ram", MFD_CLOEXEC);
    cr_assert_geq(mfd, 0);
    cr_assert_eq(ftruncate(mfd, HVT_MEM + 8192), 0);
    void *mem =
        mmap(NULL, HVT_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 8192);
    cr_assert_neq(mem, MAP_FAILED);
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = HVT_MEM;
    mo.host_addr = mem;
    HVT_OK(hvc_vm_add_memory(m.vm, &mo, NULL));
    hvt_load(m.vm, "counter64");
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    HVT_OK(hvc_serial_create(m.vm, &so, NULL));
    m.nr_vcpus = 1;
    m.vcpu[0] = hvt_vcpu(m.vm, 0, HVC_X86_MODE_LONG64, 0);
    HVT_OK(hvc_vcpu_set_reg(m.vcpu[0], HVC_X86_RDI, 0));
    migt_runner run[1];
    migt_start_runners(&m, run);
    migt_sleep_ms(10);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct sender s = {.vm = m.vm, .fd = sv[0]};
    cr_assert_eq(pthread_create(&s.t, NULL, do_send, &s), 0);
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = quiet_uart;
    migt n = {0};
    n.hv = m.hv;
    HVT_OK(hvc_vm_handover_receive(m.hv, sv[1], &ro, &n.vm));
    pthread_join(s.t, NULL);
    cr_assert_eq(s.r, 0, "%s", s.why);
    HVT_ERR(hvc_vm_resume(m.vm), -EPERM);
    /* the same file, and the guest's memory seen through it */
    hvc_memory_region *reg;
    HVT_OK(hvc_vm_find_memory(n.vm, 0, &reg));
    struct stat a, b;
    cr_assert_eq(fstat(mfd, &a), 0);
    cr_assert_eq(fstat(hvc_memory_region_fd(reg), &b), 0);
    cr_assert_eq(a.st_ino, b.st_ino);
    n.nr_vcpus = 1;
    HVT_OK(hvc_vm_get_vcpu(n.vm, 0, &n.vcpu[0]));
    uint64_t c = migt_count(&n, 0) + 3;
    cr_assert_eq(migt_run_until(&n, c), 0);
    cr_assert_eq(migt_check(&n, c), 0);
    uint64_t through_file;
    cr_assert_eq(pread(mfd, &through_file, 8, 8192 + MIGT_STATE), 8);
    cr_assert_eq(through_file, c, "the new VM does not use the caller's file");
    /* the old VM's parked vCPU thread ends with a kick */
    atomic_store(&run[0].stop, 1);
    hvc_vcpu_kick(run[0].vcpu);
    pthread_join(run[0].t, NULL);
    hvc_vm_destroy(n.vm);
    hvc_vm_destroy(m.vm);
    hvc_hypervisor_close(m.hv);
    munmap(mem, HVT_MEM);
    close(mfd);
    close(sv[0]);
    close(sv[1]);
}

/* Not a unix socket: descriptors cannot pass; refused at once. */
Test(handover, needs_a_unix_socket)
{
    static migt m;
    migt_open(&m, 1, NULL);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    HVT_ERR(hvc_vm_handover_send(m.vm, p[1], NULL, NULL), -EINVAL);
    cr_assert(!hvc_vm_is_paused(m.vm));
    hvc_handover_options o = HVC_HANDOVER_OPTIONS_INIT;
    o.flags = 8;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    HVT_ERR(hvc_vm_handover_send(m.vm, sv[0], &o, NULL), -EINVAL);
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    static const uint8_t key[HVC_STREAM_KEY_SIZE] = {1};
    ro.key = key;
    hvc_vm *vm = NULL;
    HVT_ERR(hvc_vm_handover_receive(m.hv, sv[1], &ro, &vm), -EINVAL);
    int fd;
    HVT_ERR(hvc_vm_handover_fd(m.vm, "com1", 0, &fd), -ENOENT);
    migt_close(&m);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* The new process dies after it said it was ready and read the whole
 * stream (the guest is paused then), or before it said so (the guest never
 * paused). */
static void receiver_dies(bool after_ready)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = hvt_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        struct capture c = {0};
        capture(sv[1], &c, 9);
        if (after_ready) {
            uint8_t rdy[24] = "HVCHRDY1";
            uint32_t crc = migt_crc32c(0, rdy, 20);
            memcpy(rdy + 20, &crc, 4);
            migt_write_all(sv[1], rdy, sizeof(rdy));
            static uint8_t rest[1 << 16];
            size_t got = 0;
            for (;;) { /* up to END */
                cr_assert_eq(migt_read_all(sv[1], rest + got, 24), 24);
                uint16_t id;
                memcpy(&id, rest + got, 2);
                uint64_t len = get64(rest + got + 8);
                cr_assert_eq(migt_read_all(sv[1], rest + got + 24, len), len);
                got += 24 + len;
                if (id == 0xffff)
                    break;
            }
        }
        raise(SIGKILL);
    }
    close(sv[1]);
    static migt m;
    migt_runner run[MIGT_MAX_VCPUS];
    migt_open(&m, 2, NULL);
    migt_start_runners(&m, run);
    migt_sleep_ms(10);
    hvc_handover_stats st = HVC_HANDOVER_STATS_INIT;
    int r = hvc_vm_handover_send(m.vm, sv[0], NULL, &st);
    cr_assert_lt(r, 0);
    cr_assert_eq(st.completed, 0);
    cr_assert_not_null(strstr(hvc_last_error(), "runs on"), "%s",
                       hvc_last_error());
    fprintf(stderr, "receiver killed %s: %s (pause %llu us)\n",
            after_ready ? "after ready" : "before ready", hvc_last_error(),
            (unsigned long long)st.pause_us);
    if (after_ready)
        cr_assert_gt(st.save_us + st.vcpu_stop_us, 0, "never paused");
    else
        cr_assert_eq(st.pause_us, 0, "paused before the receiver was ready");
    waitpid(pid, NULL, 0);
    assert_runs_on(&m, run);
    close(sv[0]);
}

Test(handover, receiver_dies_before_ready)
{
    receiver_dies(false);
}

Test(handover, receiver_dies_after_the_state_before_confirming)
{
    receiver_dies(true);
}

/* --- virtio-blk --------------------------------------------------------- */

/* A write the driver published (not yet notified, so not yet served) when
 * the hand-over came: the new side's device finds it in the queue and
 * serves it exactly once, on the same open disk file it was passed. */
Test(handover, virtio_blk_request_in_flight)
{
    hvt t;
    char path[64];
    vq_blk_setup(&t, path, NULL);
    uint8_t data[512];
    memset(data, 0xc3, sizeof(data));
    HVT_OK(hvc_vm_write(t.vm, BUF + 0x1000, data, sizeof(data)));
    vq_blk_request(&t, 0, 1 /* OUT */, 5, BUF + 0x1000, 512);
    vq_publish(&t, 0, 0, 0);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct sender s = {.vm = t.vm, .fd = sv[0]};
    cr_assert_eq(pthread_create(&s.t, NULL, do_send, &s), 0);
    /* the new VM: here, or in a remote destination when the backend
     * allows one VM per process (this process holds t's) */
    migt_local_vms++;
    static migt u;
    uint64_t ino;
    MIGT_OK(migt_handover_receive_blk(&u, sv[1], BASE, IRQ, "SERIAL-1234",
                                      &ino));
    pthread_join(s.t, NULL);
    cr_assert_eq(s.r, 0, "%s", s.why);
    cr_assert_eq(s.st.device_fds, 1, "the disk's descriptor");
    HVT_ERR(hvc_vm_resume(t.vm), -EPERM);
    /* The same open file. */
    struct stat a;
    cr_assert_eq(stat(path, &a), 0);
    cr_assert_eq(a.st_ino, ino);
    uint16_t used = 0;
    for (int i = 0; i < 400 && used != 1; i++) {
        MIGT_OK(migt_read(&u, USED + 2, &used, 2));
        if (used != 1)
            usleep(5000);
    }
    cr_assert_eq(used, 1, "the new side did not serve the request");
    uint8_t st;
    MIGT_OK(migt_read(&u, BUF + 0x80, &st, 1));
    cr_assert_eq(st, 0, "status %u", st);
    int fd = open(path, O_RDONLY);
    uint8_t disk[512];
    cr_assert_eq(pread(fd, disk, 512, 5 * 512), 512);
    cr_assert_arr_eq(disk, data, 512, "the write is not on the disk");
    usleep(50000);
    MIGT_OK(migt_read(&u, USED + 2, &used, 2));
    cr_assert_eq(used, 1, "served more than once");
    close(fd);
    /* the new VM, then the disk descriptor it was handed */
    migt_close(&u);
    migt_local_vms--;
    /* the old VM's script vCPU never runs again; destroy it */
    vq_vclose(&t);
    unlink(path);
    close(sv[0]);
    close(sv[1]);
}
