/* Shared harness code of the libFuzzer targets (fuzz_common.h). */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include <errno.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: check failed: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

hvc_hypervisor *fz_hv(void)
{
    static hvc_hypervisor *hv;
    if (!hv && hvc_hypervisor_open("kvm", &hv) < 0)
        fz_fail("cannot open KVM: %s", hvc_last_error());
    return hv;
}

struct fz_ram fz_ram_new(size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *m = mmap(NULL, len + 2 * pg, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        fz_fail("mmap of %zu bytes: %s", len, strerror(errno));
    if (mprotect(m + pg, len, PROT_READ | PROT_WRITE) < 0)
        fz_fail("mprotect: %s", strerror(errno));
    return (struct fz_ram){m + pg, len};
}

hvc_vm *fz_vm_new(uint32_t flags, struct fz_ram ram, uint32_t nvcpus)
{
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    vo.flags = flags;
    vo.max_vcpus = FZ_MAX_VCPUS;
    hvc_vm *vm;
    if (hvc_vm_create(fz_hv(), &vo, &vm) < 0)
        fz_fail("hvc_vm_create: %s", hvc_last_error());
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = ram.len;
    mo.host_addr = ram.p;
    if (hvc_vm_add_memory(vm, &mo, NULL) < 0)
        fz_fail("hvc_vm_add_memory: %s", hvc_last_error());
    for (uint32_t i = 0; i < nvcpus; i++) {
        hvc_vcpu *v;
        if (hvc_vcpu_create(vm, i, &v) < 0)
            fz_fail("hvc_vcpu_create: %s", hvc_last_error());
    }
    return vm;
}

/* Word-wise scans: the harness's own loops need no instrumentation. */
__attribute__((no_sanitize("address", "undefined"))) bool
fz_all_zero(const void *p, size_t n)
{
    const uint64_t *w = p;
    uint64_t acc = 0;
    for (size_t i = 0; i < n / 8; i++)
        acc |= w[i];
    const uint8_t *b = (const uint8_t *)p + n / 8 * 8;
    for (size_t i = 0; i < n % 8; i++)
        acc |= b[i];
    return acc == 0;
}

__attribute__((no_sanitize("address", "undefined"))) uint64_t
fz_hash(const void *p, size_t n)
{
    const uint64_t *w = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (size_t i = 0; i < n / 8; i++)
        h = (h ^ w[i]) * 0x100000001b3ull + (h >> 29);
    const uint8_t *b = (const uint8_t *)p + n / 8 * 8;
    for (size_t i = 0; i < n % 8; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The flush: an eventfd of the harness's own, watched on the event
 * thread. epoll reports ready descriptors in the order they became ready,
 * so when its callback runs, whatever a device signalled before has run. */
struct flusher {
    hvc_vm *vm;
    int fd;
    sem_t done;
};

static void on_flush(void *opaque, int fd, uint32_t events)
{
    (void)events;
    struct flusher *f = opaque;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) == sizeof(n))
        sem_post(&f->done);
}

void fz_flush(hvc_vm *vm)
{
    static struct flusher fl[8];
    struct flusher *f = NULL;
    for (size_t i = 0; i < 8 && !f; i++)
        if (fl[i].vm == vm || !fl[i].vm)
            f = &fl[i];
    if (!f)
        fz_fail("fz_flush: too many VMs");
    if (!f->vm) {
        f->vm = vm;
        f->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        sem_init(&f->done, 0, 0);
        if (f->fd < 0 ||
            hvc_vm_watch_fd(vm, f->fd, HVC_FD_READABLE, on_flush, f) < 0)
            fz_fail("fz_flush: cannot watch an eventfd: %s", hvc_last_error());
    }
    uint64_t one = 1;
    if (write(f->fd, &one, sizeof(one)) != sizeof(one))
        fz_fail("fz_flush: eventfd write: %s", strerror(errno));
    static int limit;
    if (!limit) {
        const char *e = getenv("FUZZ_HANG_SECONDS");
        limit = e && atoi(e) > 0 ? atoi(e) : FZ_HANG_SECONDS;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += limit;
    while (sem_timedwait(&f->done, &ts) < 0)
        if (errno != EINTR)
            fz_fail("the VM's event thread did not answer within %d s "
                    "(hang)",
                    limit);
}

uint8_t *fz_save_state(hvc_device *dev, size_t *len)
{
    size_t need = 0;
    int r = hvc_device_save_state(dev, NULL, 0, &need);
    if (r < 0 && r != -ENOSPC)
        fz_fail("%s: save_state size: %s", hvc_device_name(dev),
                hvc_last_error());
    uint8_t *buf = malloc(need ? need : 1);
    if (!buf)
        fz_fail("out of memory");
    if (hvc_device_save_state(dev, buf, need, len) < 0)
        fz_fail("%s: save_state: %s", hvc_device_name(dev), hvc_last_error());
    return buf;
}

/* Saves and loads back (which must succeed) every device's state;
 * returns the records saved before the loads. The caller flushes. */
static void save_load_all(hvc_device *const *devs, size_t n, const char *what,
                          uint8_t **recs, size_t *lens)
{
    for (size_t i = 0; i < n; i++) {
        recs[i] = fz_save_state(devs[i], &lens[i]);
        if (hvc_device_load_state(devs[i], recs[i], lens[i]) < 0)
            fz_fail("%s: device %s refuses its own saved state: %s", what,
                    hvc_device_name(devs[i]), hvc_last_error());
    }
}

/* Guest RAM of the platform, for settle(); empty without one. */
static struct fz_ram settle_ram;

/* A device that did not settle after two rounds: more rounds while each
 * one's serving changed guest RAM (what a load kicks writes used rings and
 * buffers, which a script may have placed over a ring, so the next load
 * can find other work). True once a round leaves the device's state as
 * it was; false when a round moved the device without touching guest RAM
 * (a state that does not load back as itself), or after 8 rounds. *rec
 * and *len are the last record saved. */
static bool settle(hvc_vm *vm, hvc_device *dev, uint8_t **rec, size_t *len)
{
    if (!settle_ram.len)
        return false;
    for (int round = 0; round < 8; round++) {
        uint64_t h0 = fz_hash(settle_ram.p, settle_ram.len);
        if (hvc_device_load_state(dev, *rec, *len) < 0)
            fz_fail("device %s refuses its own saved state: %s",
                    hvc_device_name(dev), hvc_last_error());
        fz_flush(vm);
        size_t next_len;
        uint8_t *next = fz_save_state(dev, &next_len);
        bool same = next_len == *len && !memcmp(next, *rec, *len);
        free(*rec);
        *rec = next;
        *len = next_len;
        if (same)
            return true;
        if (fz_hash(settle_ram.p, settle_ram.len) == h0)
            return false;
    }
    return false;
}

void fz_check_states_roundtrip(hvc_vm *vm, hvc_device *const *devs, size_t n,
                               const char *what)
{
    /* A load kicks the queues (virtio serves what the driver published
     * but had not notified yet), so the first round trip may move a
     * device on; the second must not, unless serving changed guest RAM
     * (settle()). The devices go through each round
     * together, with one flush of the event thread between rounds (what
     * the loads kicked is served before the next saves) and one pause
     * for all: a flush or a pause is a thread round trip, and these
     * round trips were most of an input's time. */
    enum { MAX = 32 };
    uint8_t *a[MAX], *b[MAX];
    size_t a_len[MAX], b_len[MAX];
    if (n > MAX)
        fz_fail("fz_check_states_roundtrip: %zu devices", n);
    /* Paused, so that devices with threads of their own (virtio-blk's
     * worker serves what a load kicks) start nothing between the saves:
     * fz_flush() waits for the event thread only. */
    if (hvc_vm_pause(vm) < 0)
        fz_fail("%s: hvc_vm_pause: %s", what, hvc_last_error());
    fz_flush(vm);
    save_load_all(devs, n, what, a, a_len);
    fz_flush(vm);
    save_load_all(devs, n, what, b, b_len);
    fz_flush(vm);
    for (size_t i = 0; i < n; i++) {
        size_t c_len;
        uint8_t *c = fz_save_state(devs[i], &c_len);
        /* The first difference in the payload (past the 48-byte header,
         * whose CRC differs whenever the payload does). */
        bool same = b_len[i] == c_len && !memcmp(b[i], c, c_len);
        if (!same) {
            /* guest RAM a round changed may give the device more work */
            uint8_t *c2 = malloc(c_len ? c_len : 1);
            size_t c2_len = c_len;
            if (!c2)
                fz_fail("out of memory");
            memcpy(c2, c, c_len);
            same = settle(vm, devs[i], &c2, &c2_len);
            free(c2);
        }
        size_t at = same ? c_len : 48;
        while (at < b_len[i] && at < c_len && b[i][at] == c[at])
            at++;
        if (!same)
            fz_fail("%s: device %s saves a different state after loading "
                    "its own twice (%zu, then %zu bytes; first difference "
                    "at byte %zu: 0x%02x, then 0x%02x)",
                    what, hvc_device_name(devs[i]), b_len[i], c_len, at,
                    at < b_len[i] ? b[i][at] : 0, at < c_len ? c[at] : 0);
        free(a[i]);
        free(b[i]);
        free(c);
    }
    if (hvc_vm_resume(vm) < 0)
        fz_fail("%s: hvc_vm_resume: %s", what, hvc_last_error());
}

void fz_check_state_roundtrip(hvc_vm *vm, hvc_device *dev, const char *what)
{
    fz_check_states_roundtrip(vm, &dev, 1, what);
}

/* hvi_io_dispatch is the library's own (src/core/io.c): the path an exit
 * takes inside hvc_vcpu_run(), without entering the guest. */
int hvi_io_dispatch(hvc_vcpu *vcpu, hvc_exit *exit, bool *claimed);

bool fz_access(hvc_vcpu *vcpu, uint32_t space, uint64_t addr, uint32_t size,
               bool write, uint64_t *value)
{
    uint8_t data[8] = {0};
    if (size > 8)
        size = 8;
    if (write)
        memcpy(data, value, size);
    hvc_exit e;
    memset(&e, 0, sizeof(e));
    if (space == HVC_IO_PIO) {
        e.reason = HVC_EXIT_PIO;
        e.u.io.port = (uint16_t)addr;
        e.u.io.size = (uint8_t)size;
        e.u.io.is_write = write;
        e.u.io.count = 1;
        e.u.io.data = data;
    } else {
        e.reason = HVC_EXIT_MMIO;
        e.u.mmio.addr = addr;
        e.u.mmio.size = size;
        e.u.mmio.is_write = write;
        e.u.mmio.data = data;
    }
    bool claimed = false;
    hvi_io_dispatch(vcpu, &e, &claimed);
    if (!write) {
        *value = 0;
        memcpy(value, data, size);
    }
    return claimed;
}

struct fz_platform *fz_platform(void)
{
    static struct fz_platform pf;
    if (pf.vm)
        return &pf;
    pf.ram = fz_ram_new(FZ_PLATFORM_RAM);
    settle_ram = pf.ram;
    pf.vm = fz_vm_new(0, pf.ram, 1);
    if (hvc_vm_get_vcpu(pf.vm, 0, &pf.vcpu) < 0)
        fz_fail("hvc_vm_get_vcpu: %s", hvc_last_error());
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    int r = hvc_serial_create(pf.vm, &so, &pf.dev[0]);
    if (r == 0)
        r = hvc_cmos_create(pf.vm, &pf.dev[1]);
    if (r == 0)
        r = hvc_i8042_create(pf.vm, &pf.dev[2]);
    if (r == 0)
        r = hvc_port80_create(pf.vm, &pf.dev[3]);
    if (r == 0)
        r = hvc_debug_exit_create(pf.vm, 0x501, &pf.dev[4]);
    if (r < 0)
        fz_fail("platform device: %s", hvc_last_error());
    pf.disk_fd = memfd_create("fuzz-disk", MFD_CLOEXEC);
    if (pf.disk_fd < 0 || ftruncate(pf.disk_fd, FZ_DISK_SIZE) < 0)
        fz_fail("memfd disk: %s", strerror(errno));
    hvc_virtio_mmio m = {FZ_VIRTIO_BASE, 5, 0};
    hvc_virtio_blk_options bo = HVC_VIRTIO_BLK_OPTIONS_INIT;
    bo.mmio = m;
    bo.fd = pf.disk_fd;
    if ((r = hvc_virtio_blk_create(pf.vm, &bo, &pf.dev[5])) == 0) {
        m.base += 0x200;
        m.irq++;
        r = hvc_virtio_rng_create(pf.vm, &m, NULL, &pf.dev[6]);
    }
    if (r == 0) {
        hvc_virtio_console_options co = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
        co.mmio = (hvc_virtio_mmio){FZ_VIRTIO_BASE + 0x400, 7, 0};
        r = hvc_virtio_console_create(pf.vm, &co, &pf.dev[7]);
    }
    if (r == 0) {
        hvc_virtio_net_options no = HVC_VIRTIO_NET_OPTIONS_INIT;
        no.flags = HVC_VIRTIO_NET_DETACHED;
        no.mmio = (hvc_virtio_mmio){FZ_VIRTIO_BASE + 0x600, 8, 0};
        const uint8_t mac[6] = FZ_NET_MAC;
        memcpy(no.mac, mac, 6);
        no.name = "net0";
        r = hvc_virtio_net_create(pf.vm, &no, &pf.dev[8]);
    }
    if (r < 0)
        fz_fail("virtio device: %s", hvc_last_error());
    for (int i = 0; i < FZ_NR_VIRTIO; i++)
        pf.made[i] =
            fz_save_state(pf.dev[FZ_FIRST_VIRTIO + i], &pf.made_len[i]);
    return &pf;
}

void fz_platform_reset(struct fz_platform *pf)
{
    if (hvc_vm_reset_devices(pf->vm) < 0)
        fz_fail("hvc_vm_reset_devices: %s", hvc_last_error());
    /* A reset keeps a device's memory grants (the VMM's policy, not the
     * guest's); an input that loaded narrowed grants must not narrow the
     * next one's devices. */
    hvc_device *devs[32];
    size_t n = 0;
    if (hvc_vm_list_devices(pf->vm, devs, 32, &n) < 0)
        fz_fail("hvc_vm_list_devices: %s", hvc_last_error());
    const hvc_memory_grant all = {HVC_GRANT_ALL_GPA, HVC_GRANT_ALL_LENGTH};
    for (size_t i = 0; i < n && i < 32; i++)
        if (hvc_device_set_grants(devs[i], &all, 1) < 0)
            fz_fail("hvc_device_set_grants: %s", hvc_last_error());
    for (int i = 0; i < FZ_NR_VIRTIO; i++) {
        hvc_device *d = pf->dev[FZ_FIRST_VIRTIO + i];
        size_t len;
        uint8_t *rec = fz_save_state(d, &len);
        if (len == pf->made_len[i] && !memcmp(rec, pf->made[i], len)) {
            free(rec);
            continue;
        }
        size_t at = len == pf->made_len[i] ? 48 : len;
        while (at < len && rec[at] == pf->made[i][at])
            at++;
        free(rec);
        if (!pf->loaded)
            fz_fail("device %s saves another state after a reset than "
                    "when it was made (%zu, then %zu bytes; first "
                    "difference at byte %zu)",
                    hvc_device_name(d), pf->made_len[i], len, at);
        if (hvc_device_load_state(d, pf->made[i], pf->made_len[i]) < 0)
            fz_fail("device %s refuses the state it was made with: %s",
                    hvc_device_name(d), hvc_last_error());
    }
    pf->loaded = false;
    memset(pf->ram.p, 0, pf->ram.len);
    if (ftruncate(pf->disk_fd, 0) < 0 ||
        ftruncate(pf->disk_fd, FZ_DISK_SIZE) < 0)
        fz_fail("resetting the disk: %s", strerror(errno));
}

void fz_vio_w32(struct fz_platform *pf, uint32_t vdev, uint32_t reg, uint32_t v)
{
    uint64_t x = v;
    fz_access(pf->vcpu, HVC_IO_MMIO, FZ_VIRTIO_BASE + vdev * 0x200u + reg, 4,
              true, &x);
}

uint32_t fz_vio_r32(struct fz_platform *pf, uint32_t vdev, uint32_t reg)
{
    uint64_t x = 0;
    fz_access(pf->vcpu, HVC_IO_MMIO, FZ_VIRTIO_BASE + vdev * 0x200u + reg, 4,
              false, &x);
    return (uint32_t)x;
}

void fz_vio_setup(struct fz_platform *pf, uint32_t vdev, uint32_t q,
                  uint32_t qsize, uint64_t desc, uint64_t avail, uint64_t used)
{
    fz_vio_w32(pf, vdev, 0x70, 0);     /* reset */
    fz_vio_w32(pf, vdev, 0x70, 1 | 2); /* ACKNOWLEDGE | DRIVER */
    for (uint32_t sel = 0; sel < 2; sel++) {
        fz_vio_w32(pf, vdev, 0x14, sel); /* DeviceFeaturesSel */
        uint32_t f = fz_vio_r32(pf, vdev, 0x10);
        fz_vio_w32(pf, vdev, 0x24, sel); /* DriverFeaturesSel */
        fz_vio_w32(pf, vdev, 0x20, f);
    }
    fz_vio_w32(pf, vdev, 0x70, 1 | 2 | 8); /* FEATURES_OK */
    fz_vio_w32(pf, vdev, 0x30, q);         /* QueueSel */
    fz_vio_w32(pf, vdev, 0x38, qsize);     /* QueueNum */
    fz_vio_w32(pf, vdev, 0x80, (uint32_t)desc);
    fz_vio_w32(pf, vdev, 0x84, (uint32_t)(desc >> 32));
    fz_vio_w32(pf, vdev, 0x90, (uint32_t)avail);
    fz_vio_w32(pf, vdev, 0x94, (uint32_t)(avail >> 32));
    fz_vio_w32(pf, vdev, 0xa0, (uint32_t)used);
    fz_vio_w32(pf, vdev, 0xa4, (uint32_t)(used >> 32));
    fz_vio_w32(pf, vdev, 0x44, 1);             /* QueueReady */
    fz_vio_w32(pf, vdev, 0x70, 1 | 2 | 8 | 4); /* DRIVER_OK */
}

uint8_t fz_u8(struct fz_in *in)
{
    return in->at < in->n ? in->p[in->at++] : 0;
}
uint16_t fz_u16(struct fz_in *in)
{
    return (uint16_t)(fz_u8(in) | fz_u8(in) << 8);
}
uint32_t fz_u32(struct fz_in *in)
{
    return fz_u16(in) | (uint32_t)fz_u16(in) << 16;
}
uint64_t fz_u64(struct fz_in *in)
{
    return fz_u32(in) | (uint64_t)fz_u32(in) << 32;
}
size_t fz_left(const struct fz_in *in)
{
    return in->n - in->at;
}

/* SSE4.2's crc32 instruction computes exactly CRC32C; the table-driven
 * loop is for a CPU without it. */
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

uint32_t fz_crc32c(uint32_t crc, const void *buf, size_t n)
{
    static int hw = -1;
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("sse4.2");
    }
    if (hw)
        return crc_hw(crc, buf, n);
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            table[i] = c;
        }
    const uint8_t *p = buf;
    crc = ~crc;
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
