/* The sending side of a hand-over (docs/MIGRATION.md, "Hand-over"): every
 * region is checked to be a file before the guest pauses; then the state
 * is saved into memory (it holds no guest pages: kilobytes), the
 * descriptors go in one SCM_RIGHTS packet, the stream follows, and the
 * receiver's confirmation decides whether the guest stays here, paused
 * for good, or resumes. */
#define _GNU_SOURCE
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEV_SLOTS 8

struct buf {
    uint8_t *p;
    size_t len, cap;
};

struct send {
    hvc_vm *vm;
    int fd;
    hvc_handover_options opts;
    hvc_handover_stats st;
    hvc_memory_region **regs;
    size_t nr_regs;
    int *fds;
    uint64_t *offsets; /* each region's offset in its file */
    bool *opened;      /* the region's descriptor is ours to close */
    struct hvi_ho_dev *devs;
    size_t nr_devs;
    struct buf out;
    struct hvi_out o;
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int64_t buf_write(void *opaque, const void *data, size_t len)
{
    struct buf *b = opaque;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 64 << 10;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return (int64_t)len;
}

/* Before the pause: the regions must be files, the devices' descriptors
 * few enough for one packet. */
static int collect(struct send *s)
{
    int r = hvi_memory_snapshot(s->vm, &s->regs, &s->nr_regs);
    if (r < 0)
        return r;
    size_t cap = HVC_HANDOVER_MAX_FDS;
    s->fds = calloc(cap, sizeof(*s->fds));
    s->devs = calloc(cap, sizeof(*s->devs));
    s->offsets = calloc(s->nr_regs + 1, sizeof(*s->offsets));
    s->opened = calloc(s->nr_regs + 1, sizeof(*s->opened));
    if (!s->fds || !s->devs || !s->offsets || !s->opened)
        return hvi_error(-ENOMEM, "out of memory");
    if (s->nr_regs > cap)
        return hvi_error(-ENOTSUP,
                         "hand-over: %zu memory regions; at most %zu "
                         "descriptors pass",
                         s->nr_regs, cap);
    for (size_t i = 0; r == 0 && i < s->nr_regs; i++) {
        const hvc_memory_region *g = s->regs[i];
        if (g->fd >= 0) /* the library's memfd, from its start */
            s->fds[i] = g->fd;
        else if (g->owned)
            r = hvi_error(-ENOTSUP,
                          "hand-over: memory region 0x%" PRIx64 "+0x%" PRIx64
                          " is anonymous memory (HVC_MEMORY_MERGEABLE), "
                          "which has no file to pass; only memory that is a "
                          "file can be handed over without copying",
                          g->gpa, g->len);
        else if ((r = hvi_ho_caller_file(g, &s->fds[i], &s->offsets[i])) == 0)
            s->opened[i] = true;
    }
    if (r < 0)
        return r;
    hvc_device **devs;
    size_t n;
    if ((r = hvi_devices_snapshot(s->vm, &devs, &n)) < 0)
        return r;
    size_t used = s->nr_regs;
    for (size_t i = 0; r == 0 && i < n; i++) {
        int slot[MAX_DEV_SLOTS];
        size_t count;
        const char *name = hvc_device_name(devs[i]);
        if ((r = hvi_device_handover_fds(devs[i], slot, MAX_DEV_SLOTS,
                                         &count)) < 0) {
            char why[384];
            snprintf(why, sizeof(why), "%s", hvc_last_error());
            r = hvi_error(r, "hand-over: device %s: %s", name, why);
            break;
        }
        for (size_t k = 0; k < count; k++) {
            if (slot[k] < 0)
                continue;
            if (used == cap) {
                r = hvi_error(-ENOTSUP,
                              "hand-over: more than %zu descriptors "
                              "(regions and devices) to pass",
                              cap);
                break;
            }
            snprintf(s->devs[s->nr_devs].name, sizeof(s->devs[0].name), "%s",
                     name);
            s->devs[s->nr_devs++].slot = (uint32_t)k;
            s->fds[used++] = slot[k];
        }
    }
    free(devs);
    return r;
}

static int check_socket(int fd)
{
    int domain = 0;
    socklen_t l = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0)
        return hvi_error(-EINVAL,
                         "hvc_vm_handover_send: descriptor %d is not a "
                         "socket (%s)",
                         fd, hvc_strerror(-errno));
    if (domain != AF_UNIX)
        return hvi_error(-EINVAL,
                         "hvc_vm_handover_send: descriptor %d is a socket "
                         "of family %d, not AF_UNIX (descriptors cannot "
                         "pass)",
                         fd, domain);
    return 0;
}

/* The first part, while the guest runs: the header (flag "memory by
 * descriptor"), CONFIG, USER and FDS. The receiver maps the memory and
 * attaches the devices from it before the guest pauses. */
static int save_setup(struct send *s)
{
    s->o.fd = -1;
    s->o.s.size = sizeof(s->o.s);
    s->o.s.write = buf_write;
    s->o.s.opaque = &s->out;
    s->o.extra_hflags = HVI_HDR_MEMFD;
    hvc_save_options so = HVC_SAVE_OPTIONS_INIT;
    so.user_data = s->opts.user_data;
    so.user_data_length = s->opts.user_data_length;
    uint8_t *fds = NULL;
    size_t len = 0;
    int r = hvi_save_begin(s->vm, &s->o, &so, true);
    if (r == 0 && (r = hvi_ho_encode(s->regs, s->offsets, s->nr_regs, s->devs,
                                     s->nr_devs, &fds, &len)) == 0)
        r = hvi_put_section(&s->o, HVI_FDS, 0, fds, len);
    free(fds);
    return r;
}

static int send_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The descriptors, then what the stream holds so far. */
static int transfer_fds(struct send *s)
{
    size_t nfds = s->nr_regs + s->nr_devs;
    uint8_t pkt[HVI_HO_PACKET];
    memcpy(pkt, HVC_HANDOVER_MAGIC, 8);
    hvi_put32(pkt + 8, (uint32_t)nfds);
    hvi_put32(pkt + 12, hvi_crc32c(0, pkt, 12));
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * HVC_HANDOVER_MAX_FDS)];
    } c;
    memset(&c, 0, sizeof(c));
    struct iovec iov = {pkt, sizeof(pkt)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        m.msg_control = c.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(h), s->fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do
        n = sendmsg(s->fd, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    int r = n < 0 ? -errno : 0;
    /* 16 bytes on a stream socket go whole in practice; the rest if not. */
    if (r == 0 && (size_t)n < sizeof(pkt))
        r = send_all(s->fd, pkt + n, sizeof(pkt) - (size_t)n);
    return r;
}

static int transfer(struct send *s)
{
    int r = send_all(s->fd, s->out.p, s->out.len);
    s->st.stream_bytes += s->out.len;
    s->out.len = 0;
    if (r < 0)
        return hvi_error(r, "hand-over: writing to the receiver failed: %s",
                         hvc_strerror(r));
    return 0;
}

/* The receiver's answer: @p magic (ready, or the confirmation) with
 * status 0, or its refusal. */
static int wait_msg(struct send *s, const char *magic, const char *what)
{
    uint8_t a[HVI_HO_ACK];
    size_t got = 0;
    while (got < sizeof(a)) {
        ssize_t n = read(s->fd, a + got, sizeof(a) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hvi_error(-errno,
                             "hand-over: waiting for the receiver's %s: %s",
                             what, hvc_strerror(-errno));
        if (n == 0)
            return hvi_error(-ECONNABORTED,
                             "hand-over: the receiver closed the connection "
                             "without its %s",
                             what);
        got += (size_t)n;
    }
    bool known =
        memcmp(a, magic, 8) == 0 || memcmp(a, HVI_HO_ACK_MAGIC, 8) == 0;
    if (!known || hvi_get32(a + 20) != hvi_crc32c(0, a, 20))
        return hvi_error(-EPROTO, "hand-over: the receiver's %s is malformed",
                         what);
    int32_t status = (int32_t)hvi_get32(a + 8);
    if (status > 0 || status < -4095)
        return hvi_error(-EPROTO, "hand-over: the receiver's %s has status %d",
                         what, status);
    if (status < 0) {
        /* Its reason, as far as it came: hostile text, quoted. */
        char why[HVI_HO_REASON_MAX + 1] = "", quoted[2 * HVI_HO_REASON_MAX];
        size_t n = hvi_get32(a + 16), rgot = 0;
        if (n > HVI_HO_REASON_MAX)
            n = 0;
        while (rgot < n) {
            /* A receiver that announces more than it sends is not waited
             * for long: the guest is paused. */
            struct pollfd p = {.fd = s->fd, .events = POLLIN};
            if (poll(&p, 1, 1000) <= 0)
                break;
            ssize_t k = read(s->fd, why + rgot, n - rgot);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            rgot += (size_t)k;
        }
        why[rgot] = 0;
        hvi_quote(quoted, sizeof(quoted), why, rgot);
        return hvi_error(status, "hand-over: the receiver refused (%s)%s%s",
                         hvc_strerror(status), rgot ? ": " : "",
                         rgot ? quoted : "");
    }
    if (memcmp(a, magic, 8) != 0)
        return hvi_error(-EPROTO,
                         "hand-over: the receiver confirmed before it was "
                         "sent the state");
    if (hvi_get32(a + 12))
        s->st.map_us = hvi_get32(a + 12);
    s->st.load_us = hvi_get32(a + 16);
    return 0;
}

/* A write that failed because the receiver refused and closed: its
 * reason, when it gave one. */
static int why_failed(struct send *s, int r, const char *magic,
                      const char *what)
{
    if (r != -EPIPE && r != -ECONNRESET)
        return r;
    shutdown(s->fd, SHUT_WR);
    int w = wait_msg(s, magic, what);
    return w == -ECONNABORTED || w == 0 ? r : w;
}

static int handover(struct send *s)
{
    int r = collect(s);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s->nr_regs; i++)
        s->st.memory_bytes += s->regs[i]->len;
    s->st.regions = (uint32_t)s->nr_regs;
    s->st.device_fds = (uint32_t)s->nr_devs;
    /* The guest runs while the receiver maps its memory. */
    if ((r = save_setup(s)) < 0 || (r = transfer_fds(s)) < 0 ||
        (r = transfer(s)) < 0)
        r = why_failed(s, r, HVI_HO_READY_MAGIC, "readiness");
    else
        r = wait_msg(s, HVI_HO_READY_MAGIC, "readiness");
    if (r < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        return hvi_error(r, "%s; the VM runs on, never paused", why);
    }
    uint64_t t0 = now_ns();
    if ((r = hvc_vm_pause(s->vm)) < 0)
        return r;
    uint64_t t1 = now_ns();
    s->st.vcpu_stop_us = (t1 - t0) / 1000u;
    r = hvi_save_finish(s->vm, &s->o);
    uint64_t t2 = now_ns();
    s->st.save_us = (t2 - t1) / 1000u;
    if (r == 0)
        r = transfer(s);
    uint64_t t3 = now_ns();
    s->st.transfer_us = (t3 - t2) / 1000u;
    if (r == 0)
        r = wait_msg(s, HVI_HO_ACK_MAGIC, "confirmation");
    else
        r = why_failed(s, r, HVI_HO_ACK_MAGIC, "confirmation");
    uint64_t t4 = now_ns();
    s->st.confirm_wait_us = (t4 - t3) / 1000u;
    s->st.pause_us = (t4 - t0) / 1000u;
    if (r == 0) {
        atomic_store(&s->vm->migrated_away, 1);
        s->st.completed = 1;
        return 0;
    }
    /* Nothing runs the guest on the other side: it runs on here. */
    char why[512];
    snprintf(why, sizeof(why), "%s", hvc_last_error());
    hvc_vm_resume(s->vm);
    s->st.pause_us = (now_ns() - t0) / 1000u;
    return hvi_error(r, "%s; the VM runs on", why);
}

int hvc_vm_handover_send(hvc_vm *vm, int sockfd,
                         const hvc_handover_options *opts,
                         hvc_handover_stats *stats)
{
    if (!vm || sockfd < 0)
        return hvi_error(-EINVAL, "hvc_vm_handover_send: %s",
                         vm ? "negative descriptor" : "NULL VM");
    if (stats && stats->size < sizeof(uint32_t))
        return hvi_error(-EINVAL, "hvc_handover_stats: size %u", stats->size);
    struct send *s = calloc(1, sizeof(*s));
    if (!s)
        return hvi_error(-ENOMEM, "out of memory");
    s->vm = vm;
    s->fd = sockfd;
    s->st.size = sizeof(s->st);
    hvc_handover_options d = HVC_HANDOVER_OPTIONS_INIT;
    s->opts = d;
    int r = 0, busy = 0;
    if (opts)
        r = hvi_copy_options(&s->opts, sizeof(s->opts), opts, sizeof(s->opts),
                             "hvc_handover_options");
    if (r == 0 && s->opts.flags)
        r = hvi_error(-EINVAL, "hvc_handover_options: unknown flags 0x%x",
                      s->opts.flags);
    if (r == 0)
        r = check_socket(sockfd);
    if (r == 0 && !atomic_compare_exchange_strong(&vm->migrating, &busy, 1))
        r = hvi_error(-EBUSY, "hvc_vm_handover_send: a migration or "
                              "hand-over of this VM is running");
    else if (r == 0) {
        if (hvc_vm_is_paused(vm) || atomic_load(&vm->migrated_away))
            r = hvi_error(-EBUSY, "hvc_vm_handover_send: the VM is %s",
                          atomic_load(&vm->migrated_away) ? "migrated already"
                                                          : "paused");
        else
            r = handover(s);
        atomic_store(&vm->migrating, 0);
    }
    if (stats) {
        size_t n = stats->size < sizeof(s->st) ? stats->size : sizeof(s->st);
        uint32_t size = stats->size;
        memcpy(stats, &s->st, n);
        stats->size = size;
    }
    hvi_out_free(&s->o);
    for (size_t i = 0; s->opened && i < s->nr_regs; i++)
        if (s->opened[i])
            close(s->fds[i]);
    free(s->offsets);
    free(s->opened);
    free(s->out.p);
    free(s->regs);
    free(s->fds);
    free(s->devs);
    free(s);
    return r;
}
