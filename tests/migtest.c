#include "migtest.h"
#include "migt_remote.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* VMs migtest made in this process and holds (migt_open, the restores;
 * inherited by a fork, as the library's own count is). */
int migt_local_vms;

void migt_console_append(migt *m, const void *data, size_t length)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    m->last_out_ns = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
    if (!m->first_out_ns)
        m->first_out_ns = m->last_out_ns;
    size_t room = sizeof(m->console) - 1 - m->console_len;
    if (length > room)
        length = room;
    memcpy(m->console + m->console_len, data, length);
    m->console_len += length;
    m->console[m->console_len] = 0;
}

static void capture(void *opaque, const void *data, size_t length)
{
    migt_console_append(opaque, data, length);
}

/* A request to the remote destination of @p m with no payload. */
static int ask(migt *m, uint32_t op, uint64_t a, uint64_t b, uint64_t *value)
{
    struct migt_req q = {.op = op, .a = a, .b = b};
    return migt_remote_call(m, &q, NULL, -1, NULL, NULL, value);
}

static void put_secrets(struct migt_req *q, const uint8_t *key,
                        const char *pass)
{
    if (key) {
        q->has_key = 1;
        memcpy(q->key, key, MIGT_KEY_SIZE);
    }
    if (pass) {
        q->has_pass = 1;
        snprintf(q->pass, sizeof(q->pass), "%s", pass);
    }
}

static int add_uart(hvc_vm *vm, migt *m)
{
    hvc_serial_options so = HVC_SERIAL_OPTIONS_INIT;
    so.name = "com1";
    if (m) {
        so.output_fn = capture;
        so.output_opaque = m;
    }
    return hvc_serial_create(vm, &so, NULL);
}

void migt_open(migt *m, uint32_t nr_vcpus, hvc_hypervisor *hv)
{
    migt_open_max(m, nr_vcpus, hv, 0);
}

void migt_open_max(migt *m, uint32_t nr_vcpus, hvc_hypervisor *hv,
                   uint32_t max_vcpus)
{
    hvt_require_kvm();
    memset(m, 0, sizeof(*m));
    if (hv)
        m->hv = hv;
    else
        HVT_OK(hvc_hypervisor_open(hvt_backend(), &m->hv));
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    vo.max_vcpus = max_vcpus;
    HVT_OK(hvc_vm_create(m->hv, &vo, &m->vm));
    migt_local_vms++;
    hvc_memory_options mo = HVC_MEMORY_OPTIONS_INIT;
    mo.length = HVT_MEM;
    HVT_OK(hvc_vm_add_memory(m->vm, &mo, NULL));
    hvt_load(m->vm, "counter64");
    HVT_OK(add_uart(m->vm, m));
    m->nr_vcpus = nr_vcpus;
    for (uint32_t i = 0; i < nr_vcpus; i++) {
        m->vcpu[i] = hvt_vcpu(m->vm, i, HVC_X86_MODE_LONG64, 0);
        HVT_OK(hvc_vcpu_set_reg(m->vcpu[i], HVC_X86_RDI, i));
    }
}

void migt_close(migt *m)
{
    migt_remote_stop(m);
    if (m->vm) {
        hvc_vm_destroy(m->vm);
        migt_local_vms--;
    }
    if (m->has_blk_fd)
        close(m->blk_fd);
    m->has_blk_fd = 0;
    if (m->hv)
        hvc_hypervisor_close(m->hv);
    m->vm = NULL;
    m->hv = NULL;
}

int migt_run_until(migt *m, uint64_t n)
{
    if (m->remote_pid) {
        migt_remote_error_clear();
        int r = ask(m, MIGT_OP_RUN_UNTIL, n, 0, NULL);
        if (r < 0)
            fprintf(stderr, "remote run: %s\n", migt_last_error());
        return r;
    }
    if (hvc_vm_write(m->vm, DATA_IN, &n, sizeof(n)) < 0)
        return 1;
    for (uint32_t i = 0; i < m->nr_vcpus; i++) {
        const hvc_exit *e;
        int r = hvc_vcpu_run(m->vcpu[i], &e);
        if (r < 0) {
            fprintf(stderr, "vCPU %u: %s\n", i, hvc_last_error());
            return 2;
        }
        if (e->reason != HVC_EXIT_PIO || e->u.io.port != PORT_DONE ||
            *(uint8_t *)e->u.io.data != 0x60 + i) {
            fprintf(stderr, "vCPU %u: exit %u port 0x%x\n", i, e->reason,
                    e->reason == HVC_EXIT_PIO ? e->u.io.port : 0);
            return 3;
        }
    }
    return 0;
}

static uint64_t state(migt *m, uint32_t i, uint32_t field)
{
    uint64_t v = ~0ull;
    migt_read(m, MIGT_STATE + 0x40 * i + field, &v, sizeof(v));
    return v;
}

uint64_t migt_count(migt *m, uint32_t i)
{
    return state(m, i, 0);
}

int migt_check(migt *m, uint64_t n)
{
    if (m->remote_pid) {
        migt_remote_error_clear();
        return ask(m, MIGT_OP_CHECK, n, 0, NULL) ? 1 : 0;
    }
    for (uint32_t i = 0; i < m->nr_vcpus; i++) {
        uint64_t count = state(m, i, 0), bad = state(m, i, 8),
                 back = state(m, i, 0x10);
        if (count != n || bad || back) {
            fprintf(stderr,
                    "vCPU %u: count %llu (want %llu), %llu pattern errors, "
                    "%llu backward TSC steps\n",
                    i, (unsigned long long)count, (unsigned long long)n,
                    (unsigned long long)bad, (unsigned long long)back);
            return 1;
        }
        for (uint32_t p = 0; p < MIGT_NPAGES; p++) {
            uint64_t want = n << 20 | (uint64_t)i << 12 | p, a = 0, b = 0;
            uint64_t at = MIGT_PATTERN + 0x40000u * i + 4096u * p;
            hvc_vm_read(m->vm, at, &a, 8);
            hvc_vm_read(m->vm, at + 4088, &b, 8);
            if (a != want || b != want) {
                fprintf(stderr, "vCPU %u page %u: 0x%llx/0x%llx, want 0x%llx\n",
                        i, p, (unsigned long long)a, (unsigned long long)b,
                        (unsigned long long)want);
                return 1;
            }
        }
    }
    return 0;
}

void migt_assert_console(migt *m, uint64_t from, uint64_t to)
{
    char want[1 << 14];
    size_t at = 0;
    for (uint64_t n = from; n <= to; n++)
        at += (size_t)snprintf(want + at, sizeof(want) - at, "count %llu\r\n",
                               (unsigned long long)n);
    cr_assert_str_eq(m->console, want);
}

int migt_save_file(migt *m, const char *path)
{
    if (m->remote_pid) {
        migt_remote_error_clear();
        struct migt_req q = {.op = MIGT_OP_SAVE_FILE, .len = strlen(path)};
        return migt_remote_call(m, &q, path, -1, NULL, NULL, NULL);
    }
    int r = hvc_vm_pause(m->vm);
    if (r == 0)
        r = hvc_snapshot_save(m->vm, path, NULL);
    hvc_vm_resume(m->vm);
    return r;
}

struct membuf {
    uint8_t *p;
    size_t len, cap, at;
};

static int64_t mem_write(void *opaque, const void *buf, size_t length)
{
    struct membuf *b = opaque;
    if (b->len + length > b->cap) {
        size_t cap = (b->len + length) * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, buf, length);
    b->len += length;
    return (int64_t)length;
}

static int64_t mem_read(void *opaque, void *buf, size_t length)
{
    struct membuf *b = opaque;
    size_t n = b->len - b->at < length ? b->len - b->at : length;
    memcpy(buf, b->p + b->at, n);
    b->at += n;
    return (int64_t)n;
}

uint8_t *migt_save_mem(migt *m, const uint8_t *key, const char *pass,
                       size_t *len)
{
    if (m->remote_pid) {
        migt_remote_error_clear();
        struct migt_req q = {.op = MIGT_OP_SAVE_MEM};
        put_secrets(&q, key, pass);
        void *d;
        int r = migt_remote_call(m, &q, NULL, -1, &d, len, NULL);
        cr_assert_eq(r, 0, "remote save: %s", migt_last_error());
        cr_assert_not_null(d);
        return d;
    }
    struct membuf b = {0};
    hvc_stream s = HVC_STREAM_INIT;
    s.write = mem_write;
    s.opaque = &b;
    hvc_save_options o = HVC_SAVE_OPTIONS_INIT;
    o.key = key;
    o.passphrase = pass;
    HVT_OK(hvc_vm_pause(m->vm));
    HVT_OK(hvc_vm_save(m->vm, &s, &o));
    HVT_OK(hvc_vm_resume(m->vm));
    *len = b.len;
    return b.p;
}

static int setup(void *opaque, hvc_vm *vm, const void *user, size_t length)
{
    (void)user;
    (void)length;
    return add_uart(vm, opaque);
}

static int adopt(migt *m, hvc_vm *vm)
{
    m->vm = vm;
    migt_local_vms++;
    m->nr_vcpus = hvc_vm_vcpu_count(vm);
    for (uint32_t i = 0; i < m->nr_vcpus && i < MIGT_MAX_VCPUS; i++)
        if (hvc_vm_get_vcpu(vm, i, &m->vcpu[i]) < 0)
            return -1;
    return 0;
}

/* Remote: starts the destination process and sends it @p q (1 when
 * remote, the result in *r). */
static int remote(migt *m, struct migt_req *q, const void *payload, int fd,
                  int *r, uint64_t *value)
{
    memset(m, 0, sizeof(*m));
    migt_remote_error_clear();
    if (!migt_remote_wanted())
        return 0;
    m->remote_fd = -1;
    *r = migt_remote_start(m);
    if (*r == 0)
        *r = migt_remote_call(m, q, payload, fd, NULL, NULL, value);
    if (*r != 0) {
        /* keep the message: closing sends nothing that fails */
        char why[4096];
        snprintf(why, sizeof(why), "%s", migt_last_error());
        migt_remote_stop(m);
        migt_remote_error_set(why);
    }
    return 1;
}

static int begin(migt *m, hvc_restore_options *o)
{
    memset(m, 0, sizeof(*m));
    int r = hvc_hypervisor_open(hvt_backend(), &m->hv);
    o->setup = setup;
    o->opaque = m;
    return r;
}

int migt_restore_file(migt *m, const char *path, uint32_t flags)
{
    struct migt_req q = {
        .op = MIGT_OP_RESTORE_FILE, .flags = flags, .len = strlen(path)};
    int rr;
    if (remote(m, &q, path, -1, &rr, NULL))
        return rr;
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    int r = begin(m, &o);
    o.flags = flags;
    hvc_vm *vm;
    if (r == 0 && (r = hvc_snapshot_restore(m->hv, path, &o, &vm)) == 0)
        r = adopt(m, vm);
    return r;
}

int migt_restore_fd(migt *m, int fd, const uint8_t *key)
{
    struct migt_req q = {.op = MIGT_OP_RESTORE_FD};
    put_secrets(&q, key, NULL);
    int rr;
    if (remote(m, &q, NULL, fd, &rr, NULL))
        return rr;
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    int r = begin(m, &o);
    o.key = key;
    hvc_vm *vm;
    if (r == 0 && (r = hvc_vm_restore_fd(m->hv, fd, &o, &vm)) == 0)
        r = adopt(m, vm);
    return r;
}

int migt_receive_fd(migt *m, int fd, const uint8_t *key, const char *pass)
{
    struct migt_req q = {.op = MIGT_OP_RECEIVE};
    put_secrets(&q, key, pass);
    int rr;
    if (remote(m, &q, NULL, fd, &rr, NULL))
        return rr;
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    int r = begin(m, &o);
    o.key = key;
    o.passphrase = pass;
    hvc_vm *vm;
    if (r == 0 && (r = hvc_vm_migrate_receive(m->hv, fd, &o, &vm)) == 0)
        r = adopt(m, vm);
    return r;
}

int migt_receive_tls(migt *m, int fd, const hvc_migrate_tls *tls,
                     const uint8_t *key)
{
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    int r = begin(m, &o);
    o.tls = tls;
    o.key = key;
    hvc_vm *vm;
    if (r == 0 && (r = hvc_vm_migrate_receive(m->hv, fd, &o, &vm)) == 0)
        r = adopt(m, vm);
    return r;
}

int migt_receive_par(migt *m, int fd, int listen_fd,
                     const hvc_migrate_tls *tls, const uint8_t *key)
{
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    int r = begin(m, &o);
    o.tls = tls;
    o.key = key;
    o.listen_fd = listen_fd;
    hvc_vm *vm;
    if (r == 0 && (r = hvc_vm_migrate_receive(m->hv, fd, &o, &vm)) == 0)
        r = adopt(m, vm);
    return r;
}

int migt_handover_receive(migt *m, int fd)
{
    struct migt_req q = {.op = MIGT_OP_HANDOVER};
    int rr;
    if (remote(m, &q, NULL, fd, &rr, NULL))
        return rr;
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    int r = begin(m, &o);
    hvc_vm *vm;
    if (r == 0 && (r = hvc_vm_handover_receive(m->hv, fd, &o, &vm)) == 0)
        r = adopt(m, vm);
    return r;
}

struct blk_setup {
    migt *m;
    uint64_t base;
    uint32_t irq;
    const char *serial;
};

static int attach_blk(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)user, (void)len;
    struct blk_setup *b = opaque;
    int fd, again;
    int r = hvc_vm_handover_fd(vm, "virtio-blk0", 0, &fd);
    if (r < 0)
        return r;
    b->m->blk_fd = fd;
    b->m->has_blk_fd = 1;
    r = hvc_vm_handover_fd(vm, "virtio-blk0", 0, &again);
    if (r != -ENOENT) {
        fprintf(stderr, "the disk descriptor was taken twice (%d)\n", r);
        return -EEXIST;
    }
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio.base = b->base;
    o.mmio.irq = b->irq;
    o.fd = fd;
    o.serial = b->serial;
    return hvc_virtio_blk_create(vm, &o, NULL);
}

int migt_handover_receive_blk(migt *m, int fd, uint64_t base, uint32_t irq,
                              const char *serial, uint64_t *disk_ino)
{
    struct migt_req q = {.op = MIGT_OP_HANDOVER,
                         .flags = MIGT_HANDOVER_BLK,
                         .a = base,
                         .b = irq,
                         .len = strlen(serial)};
    int rr;
    *disk_ino = 0;
    if (remote(m, &q, serial, fd, &rr, disk_ino))
        return rr;
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    int r = begin(m, &o);
    struct blk_setup b = {m, base, irq, serial};
    o.setup = attach_blk;
    o.opaque = &b;
    hvc_vm *vm;
    if (r == 0 && (r = hvc_vm_handover_receive(m->hv, fd, &o, &vm)) == 0)
        r = adopt(m, vm);
    struct stat st;
    if (r == 0 && m->has_blk_fd && fstat(m->blk_fd, &st) == 0)
        *disk_ino = st.st_ino;
    return r;
}

static int restore_mem(hvc_hypervisor *hv, const uint8_t *buf, size_t len,
                       hvc_restore_options *o, hvc_vm **out)
{
    struct membuf b = {(uint8_t *)buf, len, len, 0};
    hvc_stream s = HVC_STREAM_INIT;
    s.read = mem_read;
    s.opaque = &b;
    return hvc_vm_restore(hv, &s, o, out);
}

int migt_restore_mem(migt *m, const uint8_t *buf, size_t len,
                     const uint8_t *key, const char *pass)
{
    struct migt_req q = {.op = MIGT_OP_RESTORE_MEM, .len = len};
    put_secrets(&q, key, pass);
    int rr;
    if (remote(m, &q, buf, -1, &rr, NULL))
        return rr;
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    int r = begin(m, &o);
    o.key = key;
    o.passphrase = pass;
    hvc_vm *vm;
    if (r == 0 && (r = restore_mem(m->hv, buf, len, &o, &vm)) == 0)
        r = adopt(m, vm);
    return r;
}

static int quiet_setup(void *opaque, hvc_vm *vm, const void *user,
                       size_t length)
{
    (void)opaque;
    (void)user;
    (void)length;
    return add_uart(vm, NULL);
}

/* migt_restore_mem_vm()'s remote destination, started at its first call
 * on a thread and kept for the next ones (the hostile suites make
 * thousands: a new process each, with its backend's start-up, cost ~100 ms
 * under hvf). Reusing it checks more, not less: a refused restore that
 * left a VM behind in it would make its next restore fail, one VM per
 * process. It ends with its thread (the death signal, the socket). */
static _Thread_local int refusal_pid, refusal_fd = -1;

int migt_restore_mem_vm(hvc_hypervisor *hv, const uint8_t *buf, size_t len,
                        const uint8_t *key, const char *pass, hvc_vm **out)
{
    struct migt_req q = {.op = MIGT_OP_RESTORE_MEM_VM, .len = len};
    put_secrets(&q, key, pass);
    migt_remote_error_clear();
    if (migt_remote_wanted()) {
        /* the remote restores and destroys it */
        *out = NULL;
        migt *t = calloc(1, sizeof(*t));
        if (!t)
            return -ENOMEM;
        t->remote_pid = refusal_pid;
        t->remote_fd = refusal_fd;
        int r = refusal_pid > 0 ? 0 : migt_remote_start(t);
        if (r == 0)
            r = migt_remote_call(t, &q, buf, -1, NULL, NULL, NULL);
        /* 0 when it went away (reaped) */
        refusal_pid = t->remote_pid;
        refusal_fd = t->remote_fd;
        free(t);
        return r;
    }
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    o.key = key;
    o.passphrase = pass;
    o.setup = quiet_setup;
    return restore_mem(hv, buf, len, &o, out);
}

int migt_stop_progress(void *opaque, uint64_t done, uint64_t total)
{
    (void)opaque;
    (void)done;
    (void)total;
    return -ECANCELED;
}

/* The stream's checksum, computed independently of the library (bitwise,
 * reflected Castagnoli), to forge sections whose only defect is meaning. */
uint32_t migt_crc32c(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    crc = ~crc;
    while (n--) {
        crc ^= *b++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void *run_vcpu(void *arg)
{
    migt_runner *r = arg;
    while (!atomic_load(&r->stop)) {
        const hvc_exit *e;
        if (hvc_vcpu_run(r->vcpu, &e) < 0) {
            fprintf(stderr, "vCPU runner: %s\n", hvc_last_error());
            r->error = 1;
            break;
        }
    }
    return NULL;
}

void migt_start_runners(migt *m, migt_runner *r)
{
    for (uint32_t i = 0; i < m->nr_vcpus; i++) {
        r[i].vcpu = m->vcpu[i];
        atomic_store(&r[i].stop, 0);
        r[i].error = 0;
        cr_assert_eq(pthread_create(&r[i].t, NULL, run_vcpu, &r[i]), 0);
    }
}

void migt_stop_runners(migt *m, migt_runner *r)
{
    for (uint32_t i = 0; i < m->nr_vcpus; i++) {
        atomic_store(&r[i].stop, 1);
        hvc_vcpu_kick(r[i].vcpu);
        pthread_join(r[i].t, NULL);
        cr_assert_eq(r[i].error, 0, "vCPU %u: %s", i, hvc_last_error());
    }
}

uint64_t migt_ram_hash(hvc_vm *vm)
{
    hvc_memory_region *regs[8];
    size_t n = 0;
    if (hvc_vm_list_memory(vm, regs, 8, &n) < 0)
        return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n && i < 8; i++) {
        const uint64_t *p = hvc_memory_region_hva(regs[i]);
        for (uint64_t w = 0; w < hvc_memory_region_length(regs[i]) / 8; w++)
            h = (h ^ p[w]) * 0x100000001b3ull;
    }
    return h;
}

void migt_sleep_ms(unsigned ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

void migt_make_certs(migt_certs *c)
{
    snprintf(c->dir, sizeof(c->dir), "/tmp/hvt-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(c->dir));
    char cmd[2048];
    snprintf(
        cmd, sizeof(cmd),
        "cd %s && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
        "-nodes' && "
        "openssl req -x509 $K -keyout ca.key -out ca.pem -days 1 "
        "-subj /CN=hvt-ca && "
        "openssl req -x509 $K -keyout other.key -out other.pem -days 1 "
        "-subj /CN=hvt-other-ca && "
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > srv.ext && "
        "openssl req $K -keyout srv.key -out srv.csr -subj /CN=localhost && "
        "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out srv.pem -days 1 -extfile srv.ext && "
        "openssl req $K -keyout cli.key -out cli.csr -subj /CN=hvt-source && "
        "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out cli.pem -days 1",
        c->dir);
    char quiet[2200];
    snprintf(quiet, sizeof(quiet), "(%s) >/dev/null 2>&1", cmd);
    cr_assert_eq(system(quiet), 0, "the openssl command failed: %s", cmd);
    snprintf(c->ca, sizeof(c->ca), "%s/ca.pem", c->dir);
    snprintf(c->other_ca, sizeof(c->other_ca), "%s/other.pem", c->dir);
    snprintf(c->srv, sizeof(c->srv), "%s/srv.pem", c->dir);
    snprintf(c->srv_key, sizeof(c->srv_key), "%s/srv.key", c->dir);
    snprintf(c->cli, sizeof(c->cli), "%s/cli.pem", c->dir);
    snprintf(c->cli_key, sizeof(c->cli_key), "%s/cli.key", c->dir);
}

void migt_drop_certs(migt_certs *c)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
    cr_assert_eq(system(cmd), 0);
}

void migt_wait_counting(migt *m, uint64_t n)
{
    /* a loaded host may not schedule a vCPU thread for a while */
    for (int i = 0; i < 1000; i++) {
        uint32_t v = 0;
        while (v < m->nr_vcpus && migt_count(m, v) >= n)
            v++;
        if (v == m->nr_vcpus)
            return;
        migt_sleep_ms(10);
    }
    cr_assert_fail("the vCPUs did not count to %llu within 10 s",
                   (unsigned long long)n);
}

void migt_tls_options(const migt_certs *c, bool mutual, hvc_migrate_tls *src,
                      hvc_migrate_tls *dst)
{
    *src = (hvc_migrate_tls)HVC_MIGRATE_TLS_INIT;
    *dst = (hvc_migrate_tls)HVC_MIGRATE_TLS_INIT;
    dst->cert = c->srv;
    dst->key = c->srv_key;
    src->ca = c->ca;
    if (mutual) {
        dst->ca = c->ca;
        dst->flags = HVC_MIGRATE_TLS_VERIFY_PEER;
        src->cert = c->cli;
        src->key = c->cli_key;
        src->server_name = "127.0.0.1";
    }
}

int migt_listen_tcp(char *addr, size_t len)
{
    int l = hvc_migrate_listen("tcp:127.0.0.1:0");
    cr_assert_geq(l, 0, "%s", hvc_last_error());
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
    snprintf(addr, len, "tcp:127.0.0.1:%u", ntohs(a.sin_port));
    return l;
}

void migt_assert_counts_on(migt *m, const char *who)
{
    uint64_t a = migt_count(m, 0);
    for (int i = 0; i < 1000 && migt_count(m, 0) <= a; i++)
        migt_sleep_ms(10);
    cr_assert_gt(migt_count(m, 0), a, "%s stopped counting", who);
}

void migt_write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p = (const uint8_t *)p + w;
        n -= (size_t)w;
    }
}

size_t migt_read_all(int fd, void *p, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, (uint8_t *)p + got, cap - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

uint64_t migt_hash(migt *m)
{
    if (!m->remote_pid)
        return migt_ram_hash(m->vm);
    uint64_t v = 0;
    migt_remote_error_clear();
    return ask(m, MIGT_OP_HASH, 0, 0, &v) == 0 ? v : 0;
}

int migt_reg(migt *m, uint32_t i, hvc_reg id, uint64_t *v)
{
    migt_remote_error_clear();
    if (!m->remote_pid)
        return i < m->nr_vcpus && i < MIGT_MAX_VCPUS
                   ? hvc_vcpu_get_reg(m->vcpu[i], id, v)
                   : hvc_vcpu_get_reg(NULL, id, v);
    return ask(m, MIGT_OP_REG, i, (uint64_t)id, v);
}

int migt_receive_vm(hvc_hypervisor *hv, int fd, int handover, hvc_vm **out)
{
    migt t;
    struct migt_req q = {.op = MIGT_OP_RECEIVE_VM, .flags = !!handover};
    int rr;
    *out = NULL;
    if (remote(&t, &q, NULL, fd, &rr, NULL)) {
        if (rr == 0)
            migt_remote_stop(&t);
        return rr;
    }
    hvc_restore_options o = HVC_RESTORE_OPTIONS_INIT;
    o.setup = quiet_setup;
    return handover ? hvc_vm_handover_receive(hv, fd, &o, out)
                    : hvc_vm_migrate_receive(hv, fd, &o, out);
}

int migt_read(migt *m, uint64_t gpa, void *p, size_t n)
{
    if (!m->remote_pid)
        return hvc_vm_read(m->vm, gpa, p, n);
    migt_remote_error_clear();
    void *d;
    size_t got;
    struct migt_req q = {.op = MIGT_OP_READ, .a = gpa, .b = n};
    int r = migt_remote_call(m, &q, NULL, -1, &d, &got, NULL);
    if (r == 0 && (!d || got != n))
        r = -EIO;
    if (r == 0)
        memcpy(p, d, n);
    free(d);
    return r;
}
