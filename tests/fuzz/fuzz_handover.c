/* libFuzzer target for the receiving side of a hand-over
 * (hvc_vm_handover_receive, docs/MIGRATION.md "Hand-over"): a hostile
 * sender's descriptors and stream.
 *
 * At start the harness hands a real VM over (256 KiB of library memfd RAM,
 * a 16550 "com1" writing to a pipe, one vCPU) into a capture, as a relay
 * would, and keeps the packet's descriptors and the stream. Each input then
 * forges a sender from it:
 *   byte 0      how many descriptors go in the packet (0..3, mod 4);
 *   byte 1      the count the packet announces (0: the true one; else the
 *               byte minus 1);
 *   bytes 2-4   the kind of descriptor 0..2: the captured memfd, a memfd
 *               half its size, a pipe, /dev/null, the memfd reopened read
 *               only, a memfd sealed against writes, the captured one again
 *               (one file twice), the device's pipe (mod 7);
 *   bytes 5-6   where the stream is cut (u16, 0: not cut);
 *   then        edits: u16 offset (mod the stream's length), u8 value,
 *               each written over the captured stream.
 * When the stream's header is intact (no edit in its first 8 bytes) every
 * CRC is made good again, so the edits reach the FDS section's fields and
 * the state sections behind them; the packet's CRC is always good.
 *
 * Each input is received into one VM made at start in the captured VM's
 * shape but with no memory (hvi_vm_handover_receive_reuse, the hand-over
 * twin of the stream target's reuse): the FDS section maps the regions
 * into it, and between inputs the harness removes them and resets the
 * devices. Every section takes the code it takes in a real receive; only
 * the VM's creation (most of an input's time: KVM's VM and vCPU ioctls)
 * and destruction are skipped. FUZZ_HANDOVER_CREATE=1 receives with
 * hvc_vm_handover_receive() into a new VM, as a VMM does.
 *
 * Checks besides the sanitizers: a receive that succeeds gives a VM whose
 * regions each map a regular file at least as large as the region (and
 * as many regions as the captured VM had); a refused one leaves no VM
 * (the public call) or hands back only the VM offered, whose regions the
 * harness then removes; every descriptor the harness passed can be
 * closed afterwards (the library kept its own). FUZZ_HANDOVER_VERBOSE=1
 * prints each receive's result. */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hvcore/sys/backend.h>

#define RAM (256u << 10)

/* src/migration/handover_recv.c (library-internal). */
int hvi_vm_handover_receive_reuse(hvc_hypervisor *hv, int sockfd,
                                  hvc_vm *const *vms, size_t n, hvc_vm **out);

/* src/core/internal.h: a vCPU's state of one kind. */
int hvi_vcpu_state_size(hvc_vcpu *v, uint32_t kind, size_t *n);
int hvi_vcpu_state_get(hvc_vcpu *v, uint32_t kind, void *buf, size_t n);
int hvi_vcpu_state_set(hvc_vcpu *v, uint32_t kind, const void *buf, size_t n);

static hvc_vm *reused;       /* the VM each input is received into */
static uint8_t *fresh_cpuid; /* its vCPU's CPUID when new */
static size_t fresh_cpuid_len;
static int create = -1; /* FUZZ_HANDOVER_CREATE */
static uint8_t *stream;
static size_t stream_len;
static int memfd = -1, out_pipe[2] = {-1, -1};
static size_t captured_regions = 1; /* the source VM's RAM */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static size_t read_full(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (uint8_t *)p + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

struct sender {
    hvc_vm *vm;
    int fd;
};

static void *send_thread(void *arg)
{
    struct sender *s = arg;
    hvc_vm_handover_send(s->vm, s->fd, NULL, NULL);
    return NULL;
}

/* Reads sections up to and including @p last into the capture. */
static void read_sections(int fd, uint16_t last)
{
    for (;;) {
        uint8_t *h = stream + stream_len;
        if (read_full(fd, h, 24) != 24)
            fz_fail("capture: the stream ends early");
        uint64_t len = get64(h + 8);
        if (stream_len + 24 + len > (1u << 20) ||
            read_full(fd, h + 24, len) != len)
            fz_fail("capture: section of %llu bytes", (unsigned long long)len);
        stream_len += 24 + len;
        if ((uint16_t)(h[0] | h[1] << 8) == last)
            return;
    }
}

static void message(int fd, const char *magic, int32_t status)
{
    uint8_t m[24] = {0};
    memcpy(m, magic, 8);
    put32(m + 8, (uint32_t)status);
    put32(m + 20, fz_crc32c(0, m, 20));
    if (write(fd, m, sizeof(m)) != (ssize_t)sizeof(m))
        fz_fail("capture: write: %s", strerror(errno));
}

static uint8_t *vcpu_cpuid(hvc_vcpu *v, size_t *len)
{
    if (hvi_vcpu_state_size(v, HVC_BACKEND_VCPU_ARCH_CPUID, len) < 0)
        fz_fail("vCPU CPUID size: %s", hvc_last_error());
    uint8_t *p = malloc(*len ? *len : 1);
    if (!p || hvi_vcpu_state_get(v, HVC_BACKEND_VCPU_ARCH_CPUID, p, *len) < 0)
        fz_fail("vCPU CPUID: %s", hvc_last_error());
    return p;
}

/* The VM inputs are received into: the source's shape (default options,
 * vCPU 0, "com1"), no memory. */
static void make_reused(void)
{
    hvc_vcpu *v;
    if (hvc_vm_create(fz_hv(), NULL, &reused) < 0 ||
        hvc_vcpu_create(reused, 0, &v) < 0)
        fz_fail("the reused VM: %s", hvc_last_error());
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    if (hvc_serial_create(reused, &so, NULL) < 0)
        fz_fail("hvc_serial_create: %s", hvc_last_error());
    if (!fresh_cpuid)
        fresh_cpuid = vcpu_cpuid(v, &fresh_cpuid_len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    hvc_hypervisor *hv = fz_hv();
    hvc_vm *vm;
    if (hvc_vm_create(hv, NULL, &vm) < 0)
        fz_fail("hvc_vm_create: %s", hvc_last_error());
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = RAM;
    hvc_memory_region *reg;
    hvc_vcpu *v;
    if (hvc_vm_add_memory(vm, &mo, &reg) < 0 || pipe2(out_pipe, O_CLOEXEC) ||
        hvc_vcpu_create(vm, 0, &v) < 0)
        fz_fail("the source VM: %s", hvc_last_error());
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    so.output_fd = out_pipe[1];
    if (hvc_serial_create(vm, &so, NULL) < 0)
        fz_fail("hvc_serial_create: %s", hvc_last_error());
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        fz_fail("socketpair: %s", strerror(errno));
    struct sender s = {vm, sv[0]};
    pthread_t t;
    pthread_create(&t, NULL, send_thread, &s);
    uint8_t pkt[16];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } c;
    struct iovec iov = {pkt, sizeof(pkt)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    m.msg_control = c.buf;
    m.msg_controllen = sizeof(c.buf);
    if (recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC) != 16 || !CMSG_FIRSTHDR(&m))
        fz_fail("capture: no descriptor packet");
    int fds[8];
    size_t n = (CMSG_FIRSTHDR(&m)->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    memcpy(fds, CMSG_DATA(CMSG_FIRSTHDR(&m)), n * sizeof(int));
    if (n != 2) /* the region, then com1's output */
        fz_fail("capture: %zu descriptors", n);
    memfd = fds[0];
    close(fds[1]);
    stream = malloc(1u << 20);
    if (read_full(sv[1], stream, 80) != 80)
        fz_fail("capture: no header");
    stream_len = 80;
    read_sections(sv[1], 9);
    message(sv[1], "HVCHRDY1", 0);
    read_sections(sv[1], 0xffff);
    message(sv[1], "HVCHACK1", -ECANCELED); /* the source runs on */
    pthread_join(t, NULL);
    close(sv[0]);
    close(sv[1]);
    hvc_vm_destroy(vm);
    make_reused();
    const char *e = getenv("FUZZ_HANDOVER_CREATE");
    create = e && *e && *e != '0';
    return 0;
}

/* Back to no memory and reset devices, with a vCPU whose CPUID is the one
 * it had when new: a loaded CPUID is what the next load is checked
 * against (on KVM-on-PVM a vCPU's own CPUID widens the supported list).
 * The CPUID it had is set back; should that not give it back exactly,
 * the VM is made again (KVM cannot make a vCPU again). The vCPU's other
 * state every VCPU section sets whole. */
static unsigned long remade;
static void reset_reused(void)
{
    hvc_vcpu *v;
    size_t n_cpuid;
    if (hvc_vm_get_vcpu(reused, 0, &v) < 0)
        fz_fail("hvc_vm_get_vcpu: %s", hvc_last_error());
    uint8_t *cpuid = vcpu_cpuid(v, &n_cpuid);
    bool changed =
        n_cpuid != fresh_cpuid_len || memcmp(cpuid, fresh_cpuid, n_cpuid);
    free(cpuid);
    if (changed && hvi_vcpu_state_set(v, HVC_BACKEND_VCPU_ARCH_CPUID, fresh_cpuid,
                                      fresh_cpuid_len) == 0) {
        cpuid = vcpu_cpuid(v, &n_cpuid);
        changed =
            n_cpuid != fresh_cpuid_len || memcmp(cpuid, fresh_cpuid, n_cpuid);
        free(cpuid);
        if (changed)
            remade++;
    } else if (changed) {
        remade++;
    }
    if (changed) {
        if (getenv("FUZZ_HANDOVER_VERBOSE"))
            fprintf(stderr, "the reused VM is made again (%lu times)\n",
                    remade);
        hvc_vm_destroy(reused);
        make_reused();
        return;
    }
    hvc_memory_region *regs[8];
    size_t n = 0;
    if (hvc_vm_list_memory(reused, regs, 8, &n) < 0 || n > 8)
        fz_fail("hvc_vm_list_memory: %s", hvc_last_error());
    for (size_t i = 0; i < n; i++)
        if (hvc_vm_remove_memory(reused, regs[i]) < 0)
            fz_fail("hvc_vm_remove_memory: %s", hvc_last_error());
    if (hvc_vm_reset_devices(reused) < 0)
        fz_fail("hvc_vm_reset_devices: %s", hvc_last_error());
}

/* Every CRC of the stream made good again (the state sections are all
 * plain: a hand-over has no MEMORY section and is never encrypted). */
static void fix_crcs(uint8_t *s, size_t size)
{
    if (size < 80)
        return;
    put32(s + 76, fz_crc32c(0, s, 76));
    size_t off = 80;
    while (size - off >= 24) {
        uint64_t len = get64(s + off + 8);
        size_t have = size - off - 24;
        size_t n = len < have ? (size_t)len : have;
        uint32_t crc = fz_crc32c(0, s + off, 20);
        put32(s + off + 20, fz_crc32c(crc, s + off + 24, n));
        if (len >= have)
            break;
        off += 24 + (size_t)len;
    }
}

/* A descriptor of kind @p k (see the input format); -1 when it cannot be
 * made. */
static int make_fd(unsigned k)
{
    int fd = -1, p[2];
    char path[64];
    switch (k % 8) {
    case 0: return dup(memfd);
    case 1:
        fd = memfd_create("fz-short", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, RAM / 2) < 0) {
            close(fd);
            fd = -1;
        }
        return fd;
    case 2:
        if (pipe2(p, O_CLOEXEC) < 0)
            return -1;
        close(p[1]);
        return p[0];
    case 3: return open("/dev/null", O_RDWR | O_CLOEXEC);
    case 4:
        snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
        return open(path, O_RDONLY | O_CLOEXEC);
    case 5:
        fd = memfd_create("fz-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd >= 0 && (ftruncate(fd, RAM) < 0 ||
                        fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) < 0)) {
            close(fd);
            fd = -1;
        }
        return fd;
    case 6: return dup(memfd);
    default: return dup(out_pipe[1]);
    }
}

static int take_uart(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)opaque, (void)user, (void)len;
    int out = -1;
    hvc_vm_handover_fd(vm, "com1", 0, &out);
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    int r = hvc_serial_create(vm, &so, NULL);
    if (out >= 0)
        close(out);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, size, 0};
    unsigned nfds = fz_u8(&in) % 4, announce = fz_u8(&in);
    int fds[3];
    unsigned kinds[3] = {fz_u8(&in), fz_u8(&in), fz_u8(&in)};
    size_t cut = fz_u16(&in);
    static uint8_t s[1u << 20];
    memcpy(s, stream, stream_len);
    size_t len = cut && cut < stream_len ? cut : stream_len;
    bool header_kept = true;
    while (fz_left(&in) >= 3) {
        size_t at = fz_u16(&in) % stream_len;
        s[at] = fz_u8(&in);
        header_kept &= at >= 8;
    }
    if (header_kept)
        fix_crcs(s, len);
    unsigned made = 0;
    for (; made < nfds; made++)
        if ((fds[made] = make_fd(kinds[made])) < 0)
            break;
    uint8_t pkt[16];
    memcpy(pkt, HVC_HANDOVER_MAGIC, 8);
    put32(pkt + 8, announce ? announce - 1u : made);
    put32(pkt + 12, fz_crc32c(0, pkt, 12));
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        fz_fail("socketpair: %s", strerror(errno));
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 3)];
    } c;
    memset(&c, 0, sizeof(c));
    struct iovec iov = {pkt, sizeof(pkt)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (made) {
        m.msg_control = c.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * made);
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int) * made);
        memcpy(CMSG_DATA(h), fds, sizeof(int) * made);
    }
    if (sendmsg(sv[0], &m, MSG_NOSIGNAL) != 16 ||
        write(sv[0], s, len) != (ssize_t)len)
        fz_fail("sending the forged hand-over: %s", strerror(errno));
    shutdown(sv[0], SHUT_WR); /* the stream ends where it was cut */
    hvc_vm *vm = NULL;
    int r;
    if (create) {
        hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
        ro.setup = take_uart;
        r = hvc_vm_handover_receive(fz_hv(), sv[1], &ro, &vm);
    } else {
        r = hvi_vm_handover_receive_reuse(fz_hv(), sv[1], &reused, 1, &vm);
        if (vm && vm != reused)
            fz_fail("the receive gave a VM it was not offered");
    }
    if (getenv("FUZZ_HANDOVER_VERBOSE"))
        fprintf(stderr, "receive: %d %s\n", r, r < 0 ? hvc_last_error() : "");
    if (r == 0) {
        hvc_memory_region *regs[4];
        size_t n = 0;
        if (hvc_vm_list_memory(vm, regs, 4, &n) < 0)
            fz_fail("hvc_vm_list_memory: %s", hvc_last_error());
        if (n != captured_regions)
            fz_fail("the received VM has %zu regions; the captured one %zu", n,
                    captured_regions);
        for (size_t i = 0; i < n && i < 4; i++) {
            struct stat st;
            if (fstat(hvc_memory_region_fd(regs[i]), &st) < 0 ||
                !S_ISREG(st.st_mode) ||
                (uint64_t)st.st_size < hvc_memory_region_length(regs[i]))
                fz_fail("accepted region %zu does not map a regular file "
                        "as large as itself",
                        i);
        }
        if (create)
            hvc_vm_destroy(vm);
    } else if (vm && create) {
        fz_fail("a refused hand-over left a VM (%d)", r);
    }
    if (!create)
        reset_reused();
    for (unsigned i = 0; i < made; i++)
        if (close(fds[i]) < 0)
            fz_fail("descriptor %u was closed by the library", i);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
