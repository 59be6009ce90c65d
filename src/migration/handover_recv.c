/* The receiving side of a hand-over: the descriptor packet (every
 * descriptor it carries is closed on any error), then the stream, read
 * as hostile input like any restore, then the confirmation. The new VM's
 * devices stay quiescent from their attachment until the confirmation is
 * written, so nothing touches the shared memory or the devices' files
 * before the sender has let go of the guest. */
#define _GNU_SOURCE
#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void close_all(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

/* Reads the packet and keeps its descriptors in @p ho. */
static int read_packet(int fd, struct hvi_handover *ho)
{
    uint8_t pkt[HVI_HO_PACKET];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * (HVC_HANDOVER_MAX_FDS + 8))];
    } c;
    int got_fds[HVC_HANDOVER_MAX_FDS + 8];
    size_t nfds = 0, got = 0;
    bool truncated = false, foreign = false;
    while (got < sizeof(pkt)) {
        struct iovec iov = {pkt + got, sizeof(pkt) - got};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        m.msg_control = c.buf;
        m.msg_controllen = sizeof(c.buf);
        ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close_all(got_fds, nfds);
            return hvi_error(-errno, "hand-over: reading from the sender: %s",
                             hvc_strerror(-errno));
        }
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) {
                foreign = true;
                continue;
            }
            size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int tmp[HVC_HANDOVER_MAX_FDS + 8];
            memcpy(tmp, CMSG_DATA(h), k * sizeof(int));
            for (size_t i = 0; i < k; i++) {
                if (nfds < sizeof(got_fds) / sizeof(got_fds[0]))
                    got_fds[nfds++] = tmp[i];
                else
                    close(tmp[i]);
            }
        }
        if (m.msg_flags & MSG_CTRUNC)
            truncated = true;
        if (n == 0) {
            close_all(got_fds, nfds);
            return hvi_error(-ENODATA,
                             "hand-over: the sender closed the connection "
                             "after %zu bytes of the descriptor packet",
                             got);
        }
        got += (size_t)n;
    }
    int r = 0;
    if (memcmp(pkt, HVI_MAGIC, 8) == 0)
        r = hvi_error(-EPROTO, "hand-over: the sender sent a migration "
                               "stream (HVCORESN), not a hand-over");
    else if (memcmp(pkt, HVC_HANDOVER_MAGIC, 8) != 0 ||
             hvi_get32(pkt + 12) != hvi_crc32c(0, pkt, 12))
        r = hvi_error(-EBADMSG, "hand-over: the descriptor packet is "
                                "malformed (magic or CRC)");
    else if (truncated || foreign || nfds > HVC_HANDOVER_MAX_FDS)
        r = hvi_error(-EBADMSG, "hand-over: the descriptor packet carries %s",
                      foreign ? "control messages other than descriptors"
                              : "more descriptors than a hand-over passes");
    else if (hvi_get32(pkt + 8) != nfds)
        r = hvi_error(-EBADMSG,
                      "hand-over: the packet announces %u descriptors and "
                      "carries %zu",
                      hvi_get32(pkt + 8), nfds);
    if (r == 0 && !(ho->fds = calloc(nfds + 1, sizeof(int))))
        r = hvi_error(-ENOMEM, "out of memory");
    if (r < 0) {
        close_all(got_fds, nfds);
        return r;
    }
    memcpy(ho->fds, got_fds, nfds * sizeof(int));
    ho->nr_fds = (uint32_t)nfds;
    return 0;
}

int hvi_ho_send_msg(int fd, const char *magic, int status, uint64_t map_us,
                    uint64_t load_us)
{
    uint8_t a[HVI_HO_ACK];
    memcpy(a, magic, 8);
    hvi_put32(a + 8, (uint32_t)status);
    hvi_put32(a + 12, map_us > UINT32_MAX ? UINT32_MAX : (uint32_t)map_us);
    hvi_put32(a + 16, load_us > UINT32_MAX ? UINT32_MAX : (uint32_t)load_us);
    hvi_put32(a + 20, hvi_crc32c(0, a, 20));
    size_t done = 0;
    while (done < sizeof(a)) {
        ssize_t n = send(fd, a + done, sizeof(a) - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        done += (size_t)n;
    }
    return 0;
}

/* A refusal: the confirmation with the error, and the reason's text
 * (its length in place of the load time). */
static void refuse(int fd, int status, const char *why)
{
    if (strncmp(why, "hand-over: ", 11) == 0)
        why += 11;
    size_t n = strlen(why);
    if (n > HVI_HO_REASON_MAX)
        n = HVI_HO_REASON_MAX;
    if (hvi_ho_send_msg(fd, HVI_HO_ACK_MAGIC, status, 0, n) == 0)
        (void)!send(fd, why, n, MSG_NOSIGNAL);
}

int hvi_ho_ready(struct hvi_handover *ho)
{
    /* The devices are held quiescent until the confirmation is written:
     * nothing (a virtio-blk request the loaded state finds in a queue)
     * touches the shared memory or the disk before the sender has let go
     * of the guest. No vCPU runs meanwhile: nobody has the VM yet. */
    hvi_devices_hold(ho->vm, true);
    ho->ready_ns = now_ns();
    int r = hvi_ho_send_msg(ho->sockfd, HVI_HO_READY_MAGIC, 0,
                            ho->map_ns / 1000u, 0);
    if (r < 0)
        return hvi_error(r,
                         "hand-over: telling the sender it may pause the "
                         "guest failed: %s",
                         hvc_strerror(r));
    return 0;
}

void hvi_ho_state_arrived(struct hvi_handover *ho)
{
    if (!ho->state_ns)
        ho->state_ns = now_ns();
}

/* @p reuse NULL: the stream's CONFIG creates the VM. Otherwise the VM is
 * the one of @p reuse whose configuration is the stream's and that has no
 * memory yet (hvi_vm_handover_receive_reuse). */
static int receive(hvc_hypervisor *hv, int sockfd,
                   const hvc_restore_options *opts, hvc_vm *const *reuse,
                   size_t nr_reuse, hvc_vm **out)
{
    if (!hv || sockfd < 0 || !out)
        return hvi_error(-EINVAL, "hvc_vm_handover_receive: %s",
                         sockfd < 0 ? "negative descriptor" : "NULL argument");
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    int r = 0;
    if (opts && (r = hvi_copy_options(&ro, sizeof(ro), opts, sizeof(ro),
                                      "hvc_restore_options")) < 0)
        return r;
    if (ro.key || ro.passphrase || ro.flags)
        return hvi_error(-EINVAL, "hvc_vm_handover_receive: a hand-over takes "
                                  "no key, passphrase or restore flags");
    struct hvi_handover ho = {0};
    hvc_vm *vm = NULL;
    if ((r = read_packet(sockfd, &ho)) == 0) {
        ho.sockfd = sockfd;
        struct hvi_in in = {.fd = sockfd, .ho = &ho};
        in.progress = ro.progress;
        in.opaque = ro.opaque;
        r = reuse ? hvi_restore_reuse(hv, &in, &ro, reuse, nr_reuse, &vm)
                  : hvi_restore(hv, &in, &ro, false, &vm);
        if (in.crypt)
            hvi_crypt_free(in.crypt);
    }
    uint64_t map_us = ho.map_ns / 1000u;
    uint64_t load_us = ho.state_ns ? (now_ns() - ho.state_ns) / 1000u : 0;
    if (r < 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", hvc_last_error());
        refuse(sockfd, r, why); /* the sender may be gone */
        hvi_ho_close(&ho);
        if (reuse && vm) {
            /* the VM picked, half-loaded: the caller resets it */
            vm->handover = NULL;
            hvi_devices_hold(vm, false);
            *out = vm;
        }
        return hvi_error(
            r, "%s%s", strncmp(why, "hand-over", 9) ? "hand-over: " : "", why);
    }
    vm->handover = NULL;
    hvi_ho_close(&ho); /* the device descriptors nobody took */
    int w = hvi_ho_send_msg(sockfd, HVI_HO_ACK_MAGIC, 0, map_us, load_us);
    if (w < 0 && reuse) {
        hvi_devices_hold(vm, false);
        *out = vm;
        return hvi_error(w, "hand-over: confirming to the sender failed: %s",
                         hvc_strerror(w));
    }
    if (w < 0) {
        hvc_vm_destroy(vm);
        return hvi_error(w,
                         "hand-over: the VM was complete, but confirming it "
                         "to the sender failed (%s); the sender keeps the "
                         "guest",
                         hvc_strerror(w));
    }
    hvi_devices_hold(vm, false);
    *out = vm;
    return 0;
}

int hvc_vm_handover_receive(hvc_hypervisor *hv, int sockfd,
                            const hvc_restore_options *opts, hvc_vm **out)
{
    return receive(hv, sockfd, opts, NULL, 0, out);
}

int hvi_vm_handover_receive_reuse(hvc_hypervisor *hv, int sockfd,
                                  hvc_vm *const *vms, size_t n, hvc_vm **out)
{
    if (!out || !vms)
        return hvi_error(-EINVAL,
                         "hvi_vm_handover_receive_reuse: NULL argument");
    *out = NULL;
    return receive(hv, sockfd, NULL, vms, n, out);
}
