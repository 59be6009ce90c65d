/* Host side of the virtio guest tests; see vthost.h. */
#include "vthost.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int debug_port(void *opaque, hvc_vcpu *vcpu, uint64_t offset, void *data,
                      uint32_t size, int is_write)
{
    vt *v = opaque;
    (void)vcpu;
    (void)offset;
    (void)size;
    if (is_write && v->log_len + 1 < sizeof(v->log))
        v->log[v->log_len++] = *(char *)data;
    return 0;
}

void vt_open(vt *v, const char *guest)
{
    memset(v, 0, sizeof(*v));
    hvt_open(&v->t, 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.bin", HVT_GUEST_DIR, guest);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open guest %s", path);
    static unsigned char buf[DATA_IN - GUEST_LOAD];
    size_t n = fread(buf, 1, sizeof(buf), f);
    int more = fgetc(f) != EOF;
    fclose(f);
    cr_assert(n > 0 && !more, "guest %s is empty or overlaps DATA_IN", path);
    HVT_OK(hvc_vm_write(v->t.vm, GUEST_LOAD, buf, n));
    HVT_OK(hvc_vm_add_io_handler(v->t.vm, HVC_IO_PIO, 0xe9, 1, debug_port, v));
    v->vcpu = hvt_vcpu(v->t.vm, 0, HVC_X86_MODE_LONG64, 0);
}

void vt_restart(vt *v)
{
    HVT_OK(hvc_vcpu_destroy(v->vcpu));
    v->vcpu = hvt_vcpu(v->t.vm, ++v->next_id, HVC_X86_MODE_LONG64, 0);
    v->started = 0;
    v->log_len = 0;
}

void vt_close(vt *v)
{
    hvt_close(&v->t);
}

void vt_cmd_init(vt *v, uint64_t base, uint32_t irq, uint32_t flags)
{
    memset(&v->cmd, 0, sizeof(v->cmd));
    v->cmd.magic = VT_MAGIC;
    v->cmd.base = base;
    v->cmd.irq = irq;
    v->cmd.flags = flags;
}

uint32_t vt_op(vt *v, uint32_t type, uint64_t sector, uint32_t nsect,
               uint32_t seed, uint16_t ndata, uint16_t flags)
{
    cr_assert_lt(v->cmd.nops, VT_MAX_OPS);
    cr_assert_leq(type == VT_T_GET_ID ? 0 : nsect, VT_MAX_SECT);
    uint32_t i = v->cmd.nops++;
    v->cmd.ops[i] = (struct vt_op){type, nsect, sector, seed, ndata, flags};
    return i;
}

struct runner {
    hvc_vcpu *vcpu;
    int r;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    const hvc_exit *e;
    r->r = hvc_vcpu_run(r->vcpu, &e);
    return NULL;
}

int vt_run(vt *v, int seconds)
{
    if (!v->started) { /* later runs continue the guest */
        HVT_OK(hvc_vm_write(v->t.vm, DATA_IN, &v->cmd, sizeof(v->cmd)));
        v->started = 1;
    }
    struct runner r = {v->vcpu, 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_thread, &r), 0);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    if (pthread_timedjoin_np(th, NULL, &deadline) != 0) {
        hvc_vcpu_kick(v->vcpu);
        /* a kick ends a vCPU that is in the guest; one blocked inside the
         * library (a device callback waiting on a lock) stays, and the test
         * ends without it (the worker process exits) */
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 5;
        if (pthread_timedjoin_np(th, NULL, &deadline) != 0)
            cr_assert_fail("the vCPU thread is blocked inside hvc_vcpu_run() "
                           "and ignores a kick (a device deadlock?); guest "
                           "log: %.*s",
                           (int)v->log_len, v->log);
        HVT_OK(hvc_vm_read(v->t.vm, DATA_OUT, &v->out, sizeof(v->out)));
        cr_assert_fail("the guest is stuck after %d s at rip 0x%llx (op %u, "
                       "status 0x%x); guest log: %.*s",
                       seconds,
                       (unsigned long long)hvt_reg(v->vcpu, HVC_X86_RIP),
                       v->out.detail, v->out.status, (int)v->log_len, v->log);
    }
    HVT_OK(r.r);
    const hvc_exit *e = hvc_vcpu_get_exit(v->vcpu);
    HVT_OK(hvc_vm_read(v->t.vm, DATA_OUT, &v->out, sizeof(v->out)));
    cr_assert_eq(e->reason, HVC_EXIT_PIO,
                 "exit reason %u (backend %llu, code %u, data 0x%llx 0x%llx) "
                 "at rip 0x%llx rsi 0x%llx; log: %.*s",
                 e->reason, (unsigned long long)e->backend_reason,
                 e->u.internal.code, (unsigned long long)e->u.internal.data[0],
                 (unsigned long long)e->u.internal.data[1],
                 (unsigned long long)hvt_reg(v->vcpu, HVC_X86_RIP),
                 (unsigned long long)hvt_reg(v->vcpu, HVC_X86_RSI),
                 (int)v->log_len, v->log);
    cr_assert(e->u.io.is_write &&
                  (e->u.io.port == PORT_DONE || e->u.io.port == VT_PORT_STAGE),
              "unexpected access to port 0x%x", e->u.io.port);
    uint8_t b = *(uint8_t *)e->u.io.data;
    return e->u.io.port == PORT_DONE ? b : 0x100 | b;
}

void vt_run_ok(vt *v)
{
    int r = vt_run(v, 20);
    cr_assert_eq(r, VT_OK,
                 "guest failed with %d (0x%x) at op %u: device status 0x%x, "
                 "features 0x%llx; log: %.*s",
                 r, r, v->out.detail, v->out.status,
                 (unsigned long long)v->out.dev_features, (int)v->log_len,
                 v->log);
    cr_assert_eq(v->out.magic, VT_MAGIC);
    cr_assert_eq(v->out.error, VT_OK);
}

int vt_tmpfile(char *path, size_t path_size, size_t size, uint32_t junk)
{
    snprintf(path, path_size, "/tmp/hvcore-vblk-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    cr_assert_eq(ftruncate(fd, (off_t)size), 0);
    if (junk) {
        uint8_t sec[512];
        for (uint64_t s = 0; s < size / 512; s++) {
            for (uint32_t i = 0; i < 512; i++)
                sec[i] = vt_pattern(junk, s, i);
            cr_assert_eq(pwrite(fd, sec, 512, (off_t)(s * 512)), 512);
        }
    }
    return fd;
}

void vt_assert_file(int fd, uint64_t sector, uint32_t n, uint32_t seed)
{
    uint8_t sec[512];
    for (uint32_t s = 0; s < n; s++) {
        cr_assert_eq(pread(fd, sec, 512, (off_t)((sector + s) * 512)), 512,
                     "cannot read back sector %llu",
                     (unsigned long long)(sector + s));
        for (uint32_t i = 0; i < 512; i++)
            cr_assert_eq(sec[i], seed ? vt_pattern(seed, sector + s, i) : 0,
                         "file sector %llu byte %u: 0x%02x, expected 0x%02x "
                         "(seed %u)",
                         (unsigned long long)(sector + s), i, sec[i],
                         seed ? vt_pattern(seed, sector + s, i) : 0, seed);
    }
}

uint32_t vt_pattern_fnv(uint32_t seed, uint64_t sector, uint32_t n)
{
    uint32_t h = VT_FNV_INIT;
    for (uint32_t s = 0; s < n; s++)
        for (uint32_t i = 0; i < 512; i++) {
            uint8_t b = seed ? vt_pattern(seed, sector + s, i) : 0;
            h = vt_fnv(h, &b, 1);
        }
    return h;
}

void vt_assert_res(const vt *v, uint32_t i, uint8_t status, uint32_t used_len)
{
    const struct vt_res *r = &v->out.res[i];
    const struct vt_op *op = &v->cmd.ops[i];
    cr_assert(r->done, "request %u (type %u, sector %llu): no used element", i,
              op->type, (unsigned long long)op->sector);
    cr_assert_eq(r->status, status,
                 "request %u (type %u, sector %llu, %u sectors): status %u, "
                 "expected %u",
                 i, op->type, (unsigned long long)op->sector, op->nsect,
                 r->status, status);
    if (used_len != UINT32_MAX)
        cr_assert_eq(r->used_len, used_len,
                     "request %u (type %u, %u sectors): used length %u, "
                     "expected %u",
                     i, op->type, op->nsect, r->used_len, used_len);
}

void vt_read_data(vt *v, uint32_t i, void *buf, size_t len)
{
    HVT_OK(hvc_vm_read(v->t.vm, VT_BUF + i * VT_STRIDE + VT_DATA, buf, len));
}
