/* virtio-mmio devices (hvcore/virtio.h) driven from inside real guests by
 * a driver written from the virtio 1.2 specification (tests/virtio/): the
 * guest probes, negotiates features, sets up split virtqueues and submits
 * requests as Linux would, by polling or on the interrupt; the host checks
 * what the guest reports AND what reached the backing file, the host's
 * output and input descriptors. tests/test_virtio.c drives the same devices
 * at the queue level from the host. */
#include "virtio/vthost.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTORS 2048u    /* a 1 MiB backing file */
#define JUNK 0x6a756e6bu /* what the file holds before the guest writes */

/* virtio-blk feature bits and statuses (virtio 1.2 5.2.3, 5.2.6) */
#define F_RO (1ull << 5)
#define F_FLUSH (1ull << 9)
#define F_DISCARD (1ull << 13)
#define F_WRITE_ZEROES (1ull << 14)
#define F_VERSION_1 (1ull << 32)
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
/* device status: ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK */
#define STATUS_LIVE 0x0fu
#define STATUS_NEEDS_RESET 0x40u
#define ANY_LEN UINT32_MAX

static hvc_device *blk_at(vt *v, uint64_t base, uint32_t irq, int fd,
                          const char *path, uint32_t flags, const char *serial)
{
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio.base = base;
    o.mmio.irq = irq;
    o.fd = fd;
    o.path = path;
    o.flags = flags;
    o.serial = serial;
    hvc_device *dev;
    HVT_OK(hvc_virtio_blk_create(v->t.vm, &o, &dev));
    return dev;
}

static hvc_device *blk(vt *v, int fd, uint32_t flags, const char *serial)
{
    return blk_at(v, VT_BLK_BASE, VT_BLK_IRQ, fd, NULL, flags, serial);
}

static uint64_t config64(const vt *v, uint32_t off)
{
    uint64_t x;
    memcpy(&x, v->out.config + off, 8);
    return x;
}

static uint32_t config32(const vt *v, uint32_t off)
{
    uint32_t x;
    memcpy(&x, v->out.config + off, 4);
    return x;
}

/* What every blk guest run should have seen of the device. */
static void assert_blk_device(const vt *v, uint64_t capacity)
{
    cr_assert_eq(v->out.version, 2);
    cr_assert_eq(v->out.device_id, 2);
    cr_assert(v->out.dev_features & F_VERSION_1);
    cr_assert(v->out.drv_features & F_VERSION_1);
    cr_assert(v->out.queue_max >= 1 && v->out.queue_max <= 256,
              "QueueNumMax %u", v->out.queue_max);
    cr_assert_eq(config64(v, 0), capacity, "capacity %llu, expected %llu",
                 (unsigned long long)config64(v, 0),
                 (unsigned long long)capacity);
    cr_assert_eq(v->out.status, STATUS_LIVE, "device status 0x%x at the end",
                 v->out.status);
}

/* A read of data written with @seed came back intact. */
static void assert_read(const vt *v, uint32_t i)
{
    const struct vt_op *op = &v->cmd.ops[i];
    vt_assert_res(v, i, S_OK, op->nsect * 512 + 1);
    cr_assert_eq(v->out.res[i].mismatches, 0,
                 "request %u: %u bytes differ from what was written", i,
                 v->out.res[i].mismatches);
    cr_assert_eq(v->out.res[i].csum,
                 vt_pattern_fnv(op->seed, op->sector, op->nsect),
                 "request %u: the guest's checksum differs", i);
}

static const struct {
    uint64_t sector;
    uint32_t nsect, seed;
    uint16_t ndata, flags;
} writes[] = {
    {0, 8, 11, 1, 0},
    {100, 4, 12, 2, 0},
    {SECTORS - 8, 8, 13, 3, 0}, /* the last sectors */
    {200, 1, 21, 1, VT_OP_BATCH},
    {300, 16, 22, 4, VT_OP_BATCH},
    {500, 2, 23, 1, VT_OP_MERGE | VT_OP_BATCH},
    {600, 3, 24, 2, VT_OP_HDR_SPLIT | VT_OP_MERGE},
    {1000, 32, 25, 3, VT_OP_HDR_SPLIT},
};
#define NWRITES (sizeof(writes) / sizeof(writes[0]))

/* Writes with several layouts, single and batched under one notify; a
 * flush; reads back in other layouts; an untouched area; GET_ID. */
static void rw_script(vt *v)
{
    for (size_t k = 0; k < NWRITES; k++)
        vt_op(v, VT_T_OUT, writes[k].sector, writes[k].nsect, writes[k].seed,
              writes[k].ndata, writes[k].flags);
    vt_op(v, VT_T_FLUSH, 0, 0, 0, 0, 0);
    for (size_t k = 0; k < NWRITES; k++)
        vt_op(v, VT_T_IN, writes[k].sector, writes[k].nsect, writes[k].seed,
              (uint16_t)(writes[k].ndata % 4 + 1),
              (uint16_t)(writes[k].flags ^ VT_OP_MERGE));
    vt_op(v, VT_T_IN, 50, 2, 0, 1, 0);
    vt_op(v, VT_T_GET_ID, 0, 20, 0, 1, 0);
}

static void check_rw(vt *v, int fd, const char *serial)
{
    uint32_t i = 0;
    for (size_t k = 0; k < NWRITES; k++)
        vt_assert_res(v, i++, S_OK, 1);
    vt_assert_res(v, i++, S_OK, 1); /* flush */
    for (size_t k = 0; k < NWRITES; k++)
        assert_read(v, i++);
    vt_assert_res(v, i, S_OK, 2 * 512 + 1);
    cr_assert_eq(v->out.res[i].csum, vt_pattern_fnv(JUNK, 50, 2),
                 "the untouched sectors read back wrong");
    i++;
    /* GET_ID: 20 bytes, the serial zero-padded (5.2.6) */
    vt_assert_res(v, i, S_OK, 21);
    char id[20], want[20] = {0};
    vt_read_data(v, i, id, sizeof(id));
    memcpy(want, serial, strlen(serial));
    cr_assert_arr_eq(id, want, 20, "GET_ID returned '%.20s', want '%s'", id,
                     serial);

    /* the file holds what was written, and nothing around it changed */
    for (size_t k = 0; k < NWRITES; k++) {
        vt_assert_file(fd, writes[k].sector, writes[k].nsect, writes[k].seed);
        if (writes[k].sector > 0)
            vt_assert_file(fd, writes[k].sector - 1, 1, JUNK);
        if (writes[k].sector + writes[k].nsect < SECTORS)
            vt_assert_file(fd, writes[k].sector + writes[k].nsect, 1, JUNK);
    }
}

Test(virtio_guest, blk_write_flush_read_back_polling)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    hvc_device *dev = blk(&v, fd, 0, "hvcore-vt-42");
    cr_assert_str_eq(hvc_device_name(dev), "virtio-blk0");
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    v.cmd.features = F_FLUSH;
    rw_script(&v);
    vt_run_ok(&v);
    assert_blk_device(&v, SECTORS);
    cr_assert(v.out.dev_features & F_FLUSH, "VIRTIO_BLK_F_FLUSH not offered");
    cr_assert(!(v.out.dev_features & F_RO));
    check_rw(&v, fd, "hvcore-vt-42");
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* The same, the guest sleeping in HLT until the device interrupts it
 * through the PIC, acknowledging InterruptStatus each time. */
Test(virtio_guest, blk_write_flush_read_back_on_interrupts)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk(&v, fd, 0, "irq");
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, VT_IRQ);
    v.cmd.features = F_FLUSH;
    rw_script(&v);
    vt_run_ok(&v);
    assert_blk_device(&v, SECTORS);
    check_rw(&v, fd, "irq");
    cr_assert_geq(v.out.irq_count, 1, "no interrupt");
    cr_assert(v.out.irq_status & 1, "InterruptStatus never had bit 0: 0x%x",
              v.out.irq_status);
    cr_assert_eq(v.out.isr_after, 0, "InterruptStatus 0x%x after the ACKs",
                 v.out.isr_after);
    /* one interrupt per used-buffer notification at most (a storm would
     * show as many more) */
    cr_assert_leq(v.out.irq_count, v.cmd.nops + 2, "%u interrupts",
                  v.out.irq_count);
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* GET_ID with a serial of exactly 20 bytes (no NUL) and with the default
 * one; two devices in one VM, the guest run once against each. */
Test(virtio_guest, blk_get_id_full_and_default_serial)
{
    vt v;
    vt_open(&v, "vblk");
    char p1[64], p2[64];
    int f1 = vt_tmpfile(p1, sizeof(p1), 64 * 512, JUNK);
    int f2 = vt_tmpfile(p2, sizeof(p2), 64 * 512, JUNK);
    blk(&v, f1, 0, "ABCDEFGHIJ0123456789");
    blk_at(&v, VT_BLK_BASE + 0x200, 9, f2, NULL, 0, NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    uint32_t i = vt_op(&v, VT_T_GET_ID, 0, 20, 0, 2, 0);
    vt_run_ok(&v);
    vt_assert_res(&v, i, S_OK, 21);
    char id[21] = {0};
    vt_read_data(&v, i, id, 20);
    cr_assert_arr_eq(id, "ABCDEFGHIJ0123456789", 20, "GET_ID: '%.20s'", id);

    vt_restart(&v);
    vt_cmd_init(&v, VT_BLK_BASE + 0x200, 9, 0);
    i = vt_op(&v, VT_T_GET_ID, 0, 20, 0, 1, 0);
    vt_op(&v, VT_T_IN, 63, 1, 0, 1, 0);
    vt_run_ok(&v);
    assert_blk_device(&v, 64);
    vt_assert_res(&v, i, S_OK, 21);
    memset(id, 0, sizeof(id));
    vt_read_data(&v, i, id, 20);
    cr_assert_neq(id[0], 0, "the default serial is empty");
    for (int k = 0; k < 20 && id[k]; k++)
        cr_assert(id[k] > 0x20 && id[k] < 0x7f, "serial '%.20s'", id);
    vt_assert_res(&v, i + 1, S_OK, 513);
    cr_assert_eq(v.out.res[i + 1].csum, vt_pattern_fnv(JUNK, 63, 1));
    vt_close(&v);
    close(f1);
    close(f2);
    unlink(p1);
    unlink(p2);
}

/* A read-only device offers VIRTIO_BLK_F_RO and fails every request that
 * would change the file: writes, discards, write-zeroes. */
Test(virtio_guest, blk_read_only)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk_at(&v, VT_BLK_BASE, VT_BLK_IRQ, -1, path, HVC_VIRTIO_BLK_READONLY,
           NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    v.cmd.features = F_RO | F_FLUSH | F_DISCARD | F_WRITE_ZEROES;
    uint32_t r0 = vt_op(&v, VT_T_IN, 0, 4, 0, 1, 0);
    uint32_t w = vt_op(&v, VT_T_OUT, 0, 4, 7, 2, 0);
    vt_op(&v, VT_T_DISCARD, 8, 8, 0, 1, 0);
    uint32_t z = vt_op(&v, VT_T_WRITE_ZEROES, 16, 8, 0, 1, 0);
    uint32_t r1 = vt_op(&v, VT_T_IN, 0, 4, 0, 3, 0);
    vt_run_ok(&v);
    assert_blk_device(&v, SECTORS);
    cr_assert(v.out.dev_features & F_RO, "VIRTIO_BLK_F_RO not offered: 0x%llx",
              (unsigned long long)v.out.dev_features);
    vt_assert_res(&v, r0, S_OK, 4 * 512 + 1);
    cr_assert_eq(v.out.res[r0].csum, vt_pattern_fnv(JUNK, 0, 4));
    for (uint32_t i = w; i <= z; i++) {
        uint8_t s = v.out.res[i].status;
        cr_assert(v.out.res[i].done, "request %u not used", i);
        cr_assert(s == S_IOERR || s == S_UNSUPP,
                  "request %u (type %u) on a read-only device: status %u", i,
                  v.cmd.ops[i].type, s);
    }
    vt_assert_res(&v, r1, S_OK, 4 * 512 + 1);
    cr_assert_eq(v.out.res[r1].csum, vt_pattern_fnv(JUNK, 0, 4));
    vt_assert_file(fd, 0, 24, JUNK);
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* Requests past the capacity (the file's size rounded down to sectors),
 * straddling it, or whose byte offset overflows 64 bits fail with IOERR
 * and touch nothing; the file does not grow. */
Test(virtio_guest, blk_beyond_capacity_is_ioerr)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    const size_t size = SECTORS * 512 + 300;
    int fd = vt_tmpfile(path, sizeof(path), size, JUNK);
    blk(&v, fd, 0, NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    v.cmd.features = F_WRITE_ZEROES | F_DISCARD;
    uint32_t last = vt_op(&v, VT_T_IN, SECTORS - 1, 1, 0, 1, 0);
    uint32_t first_bad = vt_op(&v, VT_T_IN, SECTORS, 1, 0, 1, 0);
    vt_op(&v, VT_T_IN, SECTORS - 4, 8, 0, 2, 0);
    vt_op(&v, VT_T_OUT, SECTORS, 1, 3, 1, 0);
    vt_op(&v, VT_T_OUT, SECTORS - 2, 4, 3, 1, 0);
    vt_op(&v, VT_T_IN, UINT64_MAX - 3, 8, 0, 1, 0);
    vt_op(&v, VT_T_IN, 1ull << 55, 1, 0, 1, 0);  /* * 512 wraps to 0 */
    vt_op(&v, VT_T_OUT, 1ull << 55, 1, 3, 1, 0); /* likewise */
    vt_op(&v, VT_T_OUT, (1ull << 55) - 1, 2, 3, 1, 0);
    uint32_t wz = vt_op(&v, VT_T_WRITE_ZEROES, SECTORS - 2, 4, 0, 1, 0);
    uint32_t dz = vt_op(&v, VT_T_DISCARD, 1ull << 55, 1, 0, 1, 0);
    uint32_t after = vt_op(&v, VT_T_IN, 0, 1, 0, 1, 0);
    vt_run_ok(&v);
    assert_blk_device(&v, SECTORS);
    vt_assert_res(&v, last, S_OK, 513);
    cr_assert_eq(v.out.res[last].csum, vt_pattern_fnv(JUNK, SECTORS - 1, 1));
    for (uint32_t i = first_bad; i < wz; i++)
        vt_assert_res(&v, i, S_IOERR, ANY_LEN);
    for (uint32_t i = wz; i <= dz; i++)
        cr_assert(v.out.res[i].done && v.out.res[i].status != S_OK,
                  "request %u (type %u) past the end: status %u", i,
                  v.cmd.ops[i].type, v.out.res[i].status);
    vt_assert_res(&v, after, S_OK, 513);
    cr_assert_eq(v.out.res[after].csum, vt_pattern_fnv(JUNK, 0, 1));
    vt_assert_file(fd, 0, SECTORS, JUNK);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(st.st_size, (off_t)size, "the file grew to %lld bytes",
                 (long long)st.st_size);
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* A failing host write (EFBIG past RLIMIT_FSIZE) reaches the guest as
 * VIRTIO_BLK_S_IOERR; the device goes on serving requests. A descriptor
 * the library cannot read from (opened O_WRONLY) fails reads likewise, if
 * the library accepts it at all. */
Test(virtio_guest, blk_host_io_error_is_ioerr)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk(&v, fd, 0, NULL);
    int wfd = open(path, O_WRONLY);
    cr_assert_geq(wfd, 0);
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio.base = VT_BLK_BASE + 0x200;
    o.mmio.irq = 9;
    o.fd = wfd;
    int wr_only = hvc_virtio_blk_create(v.t.vm, &o, NULL);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    rl = old; /* only the soft limit: raising it back needs no privilege */
    rl.rlim_cur = SECTORS * 512 / 2;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);

    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    v.cmd.features = F_FLUSH;
    uint32_t ok = vt_op(&v, VT_T_OUT, 0, 1, 5, 1, 0);
    uint32_t bad = vt_op(&v, VT_T_OUT, SECTORS / 2, 1, 6, 1, 0);
    uint32_t straddle = vt_op(&v, VT_T_OUT, SECTORS / 2 - 4, 8, 7, 2, 0);
    uint32_t rd = vt_op(&v, VT_T_IN, SECTORS / 2, 1, 0, 1, 0);
    uint32_t fl = vt_op(&v, VT_T_FLUSH, 0, 0, 0, 0, 0);
    uint32_t rd0 = vt_op(&v, VT_T_IN, 0, 1, 5, 1, 0);
    vt_run_ok(&v);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    vt_assert_res(&v, ok, S_OK, 1);
    vt_assert_res(&v, bad, S_IOERR, ANY_LEN);
    vt_assert_res(&v, straddle, S_IOERR, ANY_LEN);
    vt_assert_res(&v, rd, S_OK, 513);
    cr_assert_eq(v.out.res[rd].csum, vt_pattern_fnv(JUNK, SECTORS / 2, 1));
    vt_assert_res(&v, fl, S_OK, 1);
    assert_read(&v, rd0);
    vt_assert_file(fd, 0, 1, 5);
    vt_assert_file(fd, SECTORS / 2, 1, JUNK);

    if (wr_only == 0) {
        vt_restart(&v);
        vt_cmd_init(&v, VT_BLK_BASE + 0x200, 9, 0);
        uint32_t r = vt_op(&v, VT_T_IN, 0, 1, 0, 1, 0);
        vt_run_ok(&v);
        vt_assert_res(&v, r, S_IOERR, ANY_LEN);
    } else {
        cr_log_info("an O_WRONLY descriptor is refused: %d (%s)", wr_only,
                    hvc_last_error());
    }
    vt_close(&v);
    close(wfd);
    close(fd);
    unlink(path);
}

/* Discard and write-zeroes (5.2.6): offered with non-zero limits; write-
 * zeroes leaves zeroes in the file with or without the unmap flag; a
 * discard with the unmap flag, or either with an unknown flag, is
 * UNSUPP (5.2.6.2). */
Test(virtio_guest, blk_discard_and_write_zeroes)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk(&v, fd, 0, NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    v.cmd.features = F_DISCARD | F_WRITE_ZEROES | F_FLUSH;
    uint32_t w = vt_op(&v, VT_T_OUT, 10, 16, 3, 1, 0);
    uint32_t z = vt_op(&v, VT_T_WRITE_ZEROES, 10, 4, 0, 1, 0);
    uint32_t zu = vt_op(&v, VT_T_WRITE_ZEROES, 20, 2, 0, 1, VT_OP_UNMAP);
    uint32_t d = vt_op(&v, VT_T_DISCARD, 24, 2, 0, 1, 0);
    uint32_t du = vt_op(&v, VT_T_DISCARD, 14, 2, 0, 1, VT_OP_UNMAP);
    uint32_t zb = vt_op(&v, VT_T_WRITE_ZEROES, 14, 2, 0, 1, VT_OP_BAD_FLAG);
    uint32_t db = vt_op(&v, VT_T_DISCARD, 14, 2, 0, 1, VT_OP_BAD_FLAG);
    uint32_t fl = vt_op(&v, VT_T_FLUSH, 0, 0, 0, 0, 0);
    uint32_t r = vt_op(&v, VT_T_IN, 10, 12, 0, 2, 0);
    vt_run_ok(&v);
    assert_blk_device(&v, SECTORS);
    cr_assert(v.out.dev_features & F_DISCARD, "VIRTIO_BLK_F_DISCARD missing");
    cr_assert(v.out.dev_features & F_WRITE_ZEROES,
              "VIRTIO_BLK_F_WRITE_ZEROES missing");
    cr_assert_gt(config32(&v, 36), 0, "max_discard_sectors 0");
    cr_assert_gt(config32(&v, 40), 0, "max_discard_seg 0");
    cr_assert_gt(config32(&v, 48), 0, "max_write_zeroes_sectors 0");
    cr_assert_gt(config32(&v, 52), 0, "max_write_zeroes_seg 0");
    vt_assert_res(&v, w, S_OK, 1);
    vt_assert_res(&v, z, S_OK, 1);
    vt_assert_res(&v, zu, S_OK, 1);
    vt_assert_res(&v, d, S_OK, 1);
    cr_assert(v.out.res[du].status == S_UNSUPP &&
                  v.out.res[zb].status == S_UNSUPP &&
                  v.out.res[db].status == S_UNSUPP,
              "flags the device must refuse with UNSUPP (2): discard+unmap "
              "%u, write-zeroes+unknown %u, discard+unknown %u",
              v.out.res[du].status, v.out.res[zb].status, v.out.res[db].status);
    vt_assert_res(&v, du, S_UNSUPP, 1);
    vt_assert_res(&v, zb, S_UNSUPP, 1);
    vt_assert_res(&v, db, S_UNSUPP, 1);
    vt_assert_res(&v, fl, S_OK, 1);
    /* sectors 10-21: zeroes, 14-19 the pattern, zeroes */
    uint32_t h = vt_pattern_fnv(0, 10, 4);
    uint8_t sec[512];
    for (uint64_t s = 14; s < 20; s++) {
        for (uint32_t i = 0; i < 512; i++)
            sec[i] = vt_pattern(3, s, i);
        h = vt_fnv(h, sec, 512);
    }
    memset(sec, 0, sizeof(sec));
    h = vt_fnv(vt_fnv(h, sec, 512), sec, 512);
    vt_assert_res(&v, r, S_OK, 12 * 512 + 1);
    cr_assert_eq(v.out.res[r].csum, h, "sectors 10-21 read back wrong");
    vt_assert_file(fd, 10, 4, 0);
    vt_assert_file(fd, 14, 6, 3);
    vt_assert_file(fd, 20, 2, 0);
    vt_assert_file(fd, 26, 1, JUNK);
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* A driver that did not accept DISCARD or WRITE_ZEROES does not get them
 * served (5.2.6.1): both are UNSUPP and the file is unchanged. */
Test(virtio_guest, blk_discard_needs_negotiation)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk(&v, fd, 0, NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    v.cmd.features = F_FLUSH;
    uint32_t z = vt_op(&v, VT_T_WRITE_ZEROES, 10, 4, 0, 1, 0);
    uint32_t d = vt_op(&v, VT_T_DISCARD, 24, 2, 0, 1, 0);
    vt_run_ok(&v);
    assert_blk_device(&v, SECTORS);
    cr_assert(v.out.dev_features & F_DISCARD, "VIRTIO_BLK_F_DISCARD missing");
    vt_assert_res(&v, z, S_UNSUPP, 1);
    vt_assert_res(&v, d, S_UNSUPP, 1);
    vt_assert_file(fd, 0, SECTORS, JUNK);
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* Descriptors the device must refuse (virtio.h): a buffer outside RAM or
 * running past its end, a chain that loops, a next index beyond the queue.
 * Each sets DEVICE_NEEDS_RESET and InterruptStatus bit 1, uses nothing,
 * and leaves the VMM running; after a reset the device works again. */
Test(virtio_guest, blk_bad_descriptors_need_reset)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk(&v, fd, 0, NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    vt_op(&v, VT_T_OUT, 0, 1, 1, 1, 0);
    const uint32_t kinds[] = {VT_T_BAD_ADDR, VT_T_BAD_CROSS, VT_T_BAD_LOOP,
                              VT_T_BAD_NEXT};
    uint32_t bad[4], peek[4], good[4];
    for (int k = 0; k < 4; k++) {
        bad[k] = vt_op(&v, kinds[k], 0, 0, 0, 0, 0);
        vt_op(&v, VT_T_REINIT, 0, 0, 0, 0, 0);
        peek[k] = vt_op(&v, VT_T_PEEK, 0, 0, 0, 0, 0);
        good[k] = vt_op(&v, VT_T_IN, 0, 1, 1, 1, 0);
    }
    int r = vt_run(&v, 20);
    for (int k = 0; k < 4; k++) {
        const struct vt_res *b = &v.out.res[bad[k]];
        if (r != VT_OK && v.out.detail == bad[k])
            cr_assert_fail("bad descriptor kind %u: no DEVICE_NEEDS_RESET; "
                           "status 0x%x, InterruptStatus 0x%x, used %u",
                           kinds[k], b->peek[0], b->peek[1], b->done);
        cr_assert_eq(r, VT_OK, "guest error %d at op %u", r, v.out.detail);
        cr_assert(b->peek[0] & STATUS_NEEDS_RESET, "kind %u: status 0x%x",
                  kinds[k], b->peek[0]);
        cr_assert(b->peek[1] & 2, "kind %u: InterruptStatus 0x%x", kinds[k],
                  b->peek[1]);
        cr_assert(!b->done, "kind %u: the bad chain was used", kinds[k]);
        const struct vt_res *p = &v.out.res[peek[k]];
        cr_assert_eq(p->peek[0], STATUS_LIVE, "after reset: status 0x%x",
                     p->peek[0]);
        cr_assert_eq(p->peek[1], 0, "after reset: InterruptStatus 0x%x",
                     p->peek[1]);
        cr_assert_eq(p->peek[2], 1, "after reset: QueueReady %u", p->peek[2]);
        assert_read(&v, good[k]);
    }
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* hvc_vm_reset_devices() puts the device in its power-on state: Status 0,
 * queue not ready, no interrupt pending; a fresh driver starts over with
 * ring indexes at 0. */
Test(virtio_guest, blk_vm_reset_devices)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk(&v, fd, 0, NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    vt_op(&v, VT_T_OUT, 0, 2, 4, 1, 0);
    vt_op(&v, VT_T_IN, 0, 2, 4, 1, 0);
    uint32_t stage = vt_op(&v, VT_T_STAGE, 0, 0, 0, 0, 0);
    uint32_t p = vt_op(&v, VT_T_PEEK, 0, 0, 0, 0, 0);
    vt_op(&v, VT_T_REINIT, 0, 0, 0, 0, 0);
    uint32_t r = vt_op(&v, VT_T_IN, 0, 2, 4, 2, 0);
    cr_assert_eq((uint32_t)vt_run(&v, 20), 0x100 | stage);
    HVT_OK(hvc_vm_reset_devices(v.t.vm));
    vt_run_ok(&v);
    cr_assert_eq(v.out.res[p].peek[0], 0, "status 0x%x after reset",
                 v.out.res[p].peek[0]);
    cr_assert_eq(v.out.res[p].peek[1], 0, "InterruptStatus 0x%x after reset",
                 v.out.res[p].peek[1]);
    cr_assert_eq(v.out.res[p].peek[2], 0, "QueueReady %u after reset",
                 v.out.res[p].peek[2]);
    assert_read(&v, r);
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* Feature negotiation (2.2.2): accepting a feature the device did not offer
 * is not a valid subset, so FEATURES_OK must not stick; a driver that
 * starts over with a valid set gets a working device. */
Test(virtio_guest, blk_unoffered_feature_fails_features_ok)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk(&v, fd, 0, NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, VT_RAW_FEATURES);
    /* bit 0, legacy VIRTIO_BLK_F_BARRIER: never offered to a v1 driver */
    v.cmd.features = F_VERSION_1 | 1;
    int r = vt_run(&v, 20);
    cr_assert_eq(r, VT_E_FEATURES_OK,
                 "guest ended with %d; features offered 0x%llx, status 0x%x", r,
                 (unsigned long long)v.out.dev_features, v.out.status);
    cr_assert(!(v.out.dev_features & 1));
    cr_assert(!(v.out.status & 8), "status 0x%x", v.out.status);

    vt_restart(&v);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    uint32_t i = vt_op(&v, VT_T_IN, 0, 1, 0, 1, 0);
    vt_run_ok(&v);
    assert_blk_device(&v, SECTORS);
    vt_assert_res(&v, i, S_OK, 513);
    vt_close(&v);
    close(fd);
    unlink(path);
}

/* Queues that do not exist: QueueNumMax reads 0 (4.2.2), and notifying one
 * changes nothing. */
Test(virtio_guest, blk_missing_queues)
{
    vt v;
    vt_open(&v, "vblk");
    char path[64];
    int fd = vt_tmpfile(path, sizeof(path), SECTORS * 512, JUNK);
    blk(&v, fd, 0, NULL);
    vt_cmd_init(&v, VT_BLK_BASE, VT_BLK_IRQ, 0);
    uint32_t w = vt_op(&v, VT_T_OUT, 5, 2, 8, 1, 0);
    uint32_t n = vt_op(&v, VT_T_BAD_NOTIFY, 0, 0, 0, 0, 0);
    uint32_t r = vt_op(&v, VT_T_IN, 5, 2, 8, 1, 0);
    vt_run_ok(&v);
    assert_blk_device(&v, SECTORS);
    vt_assert_res(&v, w, S_OK, 1);
    cr_assert_eq(v.out.res[n].peek[0], STATUS_LIVE, "status 0x%x",
                 v.out.res[n].peek[0]);
    cr_assert_eq(v.out.res[n].peek[3], 0, "QueueNumMax of queue 1: %u",
                 v.out.res[n].peek[3]);
    assert_read(&v, r);
    vt_close(&v);
    close(fd);
    unlink(path);
}
