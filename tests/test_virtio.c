/* virtio-mmio devices at the queue level, driven from the host: the test
 * builds descriptor tables and rings in guest memory and a small guest
 * (guests/mmio_script.S) performs the register accesses a driver would.
 * Covers requests, every malicious descriptor case, and state save ->
 * destroy -> create -> load with requests in flight. */
#include "vqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(virtio, blk_write_read_flush_getid)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    cr_assert_str_eq(hvc_device_type(dev), "virtio-blk");
    uint8_t data[1024];
    for (int i = 0; i < 1024; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    HVT_OK(hvc_vm_write(t.vm, 0x300000, data, sizeof(data)));
    vq_blk_request(&t, 0, 1 /* OUT */, 5, 0x300000, 1024);
    vq_publish(&t, 0, 0, 0);
    uint32_t isr = vq_notify_wait(&t, 0, 1);
    cr_assert_eq(isr & 1, 1, "used-buffer interrupt status");
    cr_assert_eq(vq_blk_status(&t, 0), 0);
    int fd = open(path, O_RDONLY);
    uint8_t disk[1024];
    cr_assert_eq(pread(fd, disk, sizeof(disk), 5 * 512), 1024);
    cr_assert_arr_eq(disk, data, 1024, "the file holds what the guest wrote");
    uint8_t before[512];
    cr_assert_eq(pread(fd, before, 512, 4 * 512), 512);
    cr_assert_eq(before[0], 4, "neighbouring sectors untouched");

    vq_blk_request(&t, 1, 0 /* IN */, 5, 0x301000, 1024);
    vq_publish(&t, 0, 1, 3);
    vq_notify_wait(&t, 0, 2);
    cr_assert_eq(vq_blk_status(&t, 1), 0);
    uint8_t back[1024];
    HVT_OK(hvc_vm_read(t.vm, 0x301000, back, sizeof(back)));
    cr_assert_arr_eq(back, data, 1024);
    uint32_t used_len;
    HVT_OK(hvc_vm_read(t.vm, USED + 4 + 8 * 1 + 4, &used_len, 4));
    cr_assert_eq(used_len, 1025, "data plus status byte");

    struct {
        uint32_t type, reserved;
        uint64_t sector;
    } fl = {4 /* FLUSH */, 0, 0};
    HVT_OK(hvc_vm_write(t.vm, BUF + 0x200, &fl, sizeof(fl)));
    vq_put_desc(&t, 0, 6, (struct desc){BUF + 0x200, 16, 1, 7}); /* no data */
    vq_put_desc(&t, 0, 7, (struct desc){BUF + 0x280, 1, 2, 0});
    vq_publish(&t, 0, 2, 6);
    vq_notify_wait(&t, 0, 3);
    cr_assert_eq(vq_blk_status(&t, 2), 0);

    vq_blk_request(&t, 1, 8 /* GET_ID */, 0, 0x303000, 20);
    vq_publish(&t, 0, 3, 3);
    vq_notify_wait(&t, 0, 4);
    char id[21] = {0};
    HVT_OK(hvc_vm_read(t.vm, 0x303000, id, 20));
    cr_assert_str_eq(id, "SERIAL-1234");

    /* beyond capacity (64 sectors): IOERR, nothing written */
    vq_blk_request(&t, 0, 1, 63, 0x300000, 1024);
    vq_publish(&t, 0, 4, 0);
    vq_notify_wait(&t, 0, 5);
    cr_assert_eq(vq_blk_status(&t, 0), 1, "VIRTIO_BLK_S_IOERR");
    /* an unknown request type */
    vq_blk_request(&t, 0, 99, 0, 0x300000, 512);
    vq_publish(&t, 0, 5, 0);
    vq_notify_wait(&t, 0, 6);
    cr_assert_eq(vq_blk_status(&t, 0), 2, "VIRTIO_BLK_S_UNSUPP");
    close(fd);
    unlink(path);
    vq_vclose(&t);
}

Test(virtio, blk_host_io_error_is_ioerr)
{
    hvt t;
    vq_vopen(&t);
    /* a descriptor opened read-only behind a writable device: the host's
     * pwrite fails with EBADF */
    char path[64];
    int fd = vq_make_disk(path, 64 * 512);
    close(fd);
    fd = open(path, O_RDONLY);
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio.base = BASE;
    o.mmio.irq = IRQ;
    o.fd = fd;
    HVT_OK(hvc_virtio_blk_create(t.vm, &o, NULL));
    vq_init(&t, 1);
    vq_blk_request(&t, 0, 1, 0, 0x300000, 512);
    vq_publish(&t, 0, 0, 0);
    vq_notify_wait(&t, 0, 1);
    cr_assert_eq(vq_blk_status(&t, 0), 1, "a host write error is IOERR");
    vq_vclose(&t);
    close(fd);
    unlink(path);
}

Test(virtio, blk_readonly)
{
    hvt t;
    vq_vopen(&t);
    char path[64];
    close(vq_make_disk(path, 64 * 512));
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio.base = BASE;
    o.mmio.irq = IRQ;
    o.path = path;
    o.flags = HVC_VIRTIO_BLK_READONLY;
    HVT_OK(hvc_virtio_blk_create(t.vm, &o, NULL));
    struct script s = {.n = 0};
    vq_w32(&s, 0x014, 0);
    int f = vq_r32(&s, 0x010);
    vq_run(&t, &s);
    cr_assert(s.ops[f].value & (1u << 5), "VIRTIO_BLK_F_RO offered");
    vq_init(&t, 1);
    vq_blk_request(&t, 0, 1, 0, 0x300000, 512);
    vq_publish(&t, 0, 0, 0);
    vq_notify_wait(&t, 0, 1);
    cr_assert_eq(vq_blk_status(&t, 0), 1, "writes fail on a read-only disk");
    vq_blk_request(&t, 1, 0, 3, 0x301000, 512);
    vq_publish(&t, 0, 1, 3);
    vq_notify_wait(&t, 0, 2);
    cr_assert_eq(vq_blk_status(&t, 1), 0, "reads work");
    uint8_t b;
    HVT_OK(hvc_vm_read(t.vm, 0x301000, &b, 1));
    cr_assert_eq(b, 3);
    vq_vclose(&t);
    unlink(path);
}

/* Publishes a malformed chain; the device must fail (NEEDS_RESET, config
 * interrupt), complete nothing, and work again after a reset. */
static void expect_device_error(hvt *t, void (*build)(hvt *))
{
    build(t);
    struct script s = {.n = 0};
    vq_w32(&s, 0x050, 0);
    vq_run(t, &s);
    uint32_t st = 0;
    for (int i = 0; i < 200 && !(st & 0x40); i++) {
        usleep(5000);
        st = vq_status_reg(t);
    }
    cr_assert(st & 0x40, "DEVICE_NEEDS_RESET not set (status 0x%x)", st);
    cr_assert(st & (2u << 16), "configuration-change interrupt status");
    uint16_t used;
    HVT_OK(hvc_vm_read(t->vm, USED + 2, &used, 2));
    cr_assert_eq(used, 0, "nothing completed");
    /* the driver resets and starts over: the device serves again */
    memset(hvc_memory_region_hva(t->ram) + AVAIL, 0, 0x2000);
    vq_init(t, 1);
    vq_blk_request(t, 0, 0, 1, 0x300000, 512);
    vq_publish(t, 0, 0, 0);
    vq_notify_wait(t, 0, 1);
    cr_assert_eq(vq_blk_status(t, 0), 0);
}

static void outside_ram(hvt *t)
{
    vq_put_desc(t, 0, 0, (struct desc){0x3ff800, 0x1000, 0, 0});
    vq_publish(t, 0, 0, 0);
}

static void wrapping(hvt *t)
{
    vq_put_desc(t, 0, 0, (struct desc){0xfffffffffffff000ull, 0x2000, 0, 0});
    vq_publish(t, 0, 0, 0);
}

static void huge_length(hvt *t)
{
    vq_put_desc(t, 0, 0, (struct desc){BUF, 0xffffffffu, 0, 0});
    vq_publish(t, 0, 0, 0);
}

static void loop(hvt *t)
{
    vq_put_desc(t, 0, 0, (struct desc){BUF, 16, 1, 1});
    vq_put_desc(t, 0, 1, (struct desc){BUF, 16, 1, 0});
    vq_publish(t, 0, 0, 0);
}

static void too_long(hvt *t)
{
    for (uint16_t i = 0; i < QSIZE; i++) /* 0 -> 1 -> ... -> 7 -> 0 ... */
        vq_put_desc(t, 0, i,
                    (struct desc){BUF, 16, 1, (uint16_t)((i + 1) % QSIZE)});
    vq_publish(t, 0, 0, 0);
}

static void next_out_of_range(hvt *t)
{
    vq_put_desc(t, 0, 0, (struct desc){BUF, 16, 1, 200});
    vq_publish(t, 0, 0, 0);
}

static void head_out_of_range(hvt *t)
{
    vq_publish(t, 0, 0, 77);
}

static void index_far_ahead(hvt *t)
{
    vq_put_desc(t, 0, 0, (struct desc){BUF, 16, 0, 0});
    uint16_t idx = 1000;
    HVT_OK(hvc_vm_write(t->vm, AVAIL + 2, &idx, 2));
}

static void readable_after_writable(hvt *t)
{
    vq_put_desc(t, 0, 0, (struct desc){BUF, 16, 1 | 2, 1});
    vq_put_desc(t, 0, 1, (struct desc){BUF, 16, 0, 0});
    vq_publish(t, 0, 0, 0);
}

static void indirect(hvt *t)
{
    vq_put_desc(t, 0, 0, (struct desc){BUF, 16, 4, 0});
    vq_publish(t, 0, 0, 0);
}

static void short_request(hvt *t)
{
    vq_put_desc(t, 0, 0,
                (struct desc){BUF, 8, 0, 0}); /* no header, no status */
    vq_publish(t, 0, 0, 0);
}

Test(virtio, malicious_descriptors_fail_the_device_only)
{
    void (*cases[])(hvt *) = {outside_ram,
                              wrapping,
                              huge_length,
                              loop,
                              too_long,
                              next_out_of_range,
                              head_out_of_range,
                              index_far_ahead,
                              readable_after_writable,
                              indirect,
                              short_request};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hvt t;
        char path[64];
        hvc_device *dev;
        vq_blk_setup(&t, path, &dev);
        expect_device_error(&t, cases[i]);
        vq_vclose(&t);
        unlink(path);
    }
}

Test(virtio, rings_outside_ram_are_refused)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    struct script s = {.n = 0};
    vq_w32(&s, 0x070, 0);
    vq_w32(&s, 0x070, 3);
    vq_w32(&s, 0x030, 0);
    vq_w32(&s, 0x038, 3); /* not a power of two */
    vq_w32(&s, 0x080, DESC);
    vq_w32(&s, 0x090, AVAIL);
    vq_w32(&s, 0x0a0, USED);
    vq_w32(&s, 0x044, 1);
    int ready = vq_r32(&s, 0x044);
    int st = vq_r32(&s, 0x070);
    vq_run(&t, &s);
    cr_assert_eq(s.ops[ready].value, 0);
    cr_assert(s.ops[st].value & 0x40);
    s.n = 0;
    vq_w32(&s, 0x070, 0);
    vq_w32(&s, 0x070, 3);
    vq_w32(&s, 0x038, 8);
    vq_w32(&s, 0x0a0, 0x3ffff0); /* used ring runs past RAM */
    vq_w32(&s, 0x044, 1);
    ready = vq_r32(&s, 0x044);
    st = vq_r32(&s, 0x070);
    vq_run(&t, &s);
    cr_assert_eq(s.ops[ready].value, 0);
    cr_assert(s.ops[st].value & 0x40);
    vq_vclose(&t);
    unlink(path);
}

Test(virtio, rng_fills_buffers)
{
    hvt t;
    vq_vopen(&t);
    hvc_virtio_mmio m = {BASE, IRQ, 0};
    hvc_device *dev;
    HVT_OK(hvc_virtio_rng_create(t.vm, &m, NULL, &dev));
    cr_assert_str_eq(hvc_device_name(dev), "virtio-rng0");
    vq_init(&t, 1);
    vq_put_desc(&t, 0, 0, (struct desc){0x300000, 64, 2 | 1, 1});
    vq_put_desc(&t, 0, 1, (struct desc){0x300100, 64, 2, 0});
    vq_publish(&t, 0, 0, 0);
    vq_notify_wait(&t, 0, 1);
    uint32_t used[2];
    HVT_OK(hvc_vm_read(t.vm, USED + 4, used, 8));
    cr_assert_eq(used[0], 0);
    cr_assert_eq(used[1], 128);
    uint8_t a[64], b[64], zero[64] = {0};
    HVT_OK(hvc_vm_read(t.vm, 0x300000, a, 64));
    HVT_OK(hvc_vm_read(t.vm, 0x300100, b, 64));
    cr_assert(memcmp(a, zero, 64) && memcmp(b, zero, 64) && memcmp(a, b, 64));
    vq_vclose(&t);
}

static char console_out[256];
static size_t console_len;

static void capture(void *opaque, const void *data, size_t len)
{
    (void)opaque;
    memcpy(console_out + console_len, data, len);
    console_len += len;
}

Test(virtio, console_transmit_and_receive)
{
    hvt t;
    vq_vopen(&t);
    int in[2];
    cr_assert_eq(pipe(in), 0);
    hvc_virtio_console_options o = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.output_fn = capture;
    o.input_fd = in[0];
    HVT_OK(hvc_virtio_console_create(t.vm, &o, NULL));
    vq_init(&t, 2);
    /* transmit on queue 1 */
    HVT_OK(hvc_vm_write(t.vm, 0x300000, "hello console", 13));
    vq_put_desc(&t, 0x4000, 0, (struct desc){0x300000, 13, 0, 0});
    vq_publish(&t, 0x4000, 0, 0);
    vq_notify_wait(&t, 1, 1);
    cr_assert_eq(console_len, 13);
    cr_assert_arr_eq(console_out, "hello console", 13);
    /* receive on queue 0: input arrives after the buffer is posted */
    vq_put_desc(&t, 0, 0, (struct desc){0x301000, 64, 2, 0});
    vq_publish(&t, 0, 0, 0);
    struct script s = {.n = 0};
    vq_w32(&s, 0x050, 0);
    vq_run(&t, &s);
    cr_assert_eq(write(in[1], "typed", 5), 5);
    s.n = 0;
    vq_wait16(&s, USED + 2, 1);
    vq_run(&t, &s);
    char got[8] = {0};
    HVT_OK(hvc_vm_read(t.vm, 0x301000, got, 5));
    cr_assert_str_eq(got, "typed");
    uint32_t used_len;
    HVT_OK(hvc_vm_read(t.vm, USED + 8, &used_len, 4));
    cr_assert_eq(used_len, 5);
    vq_vclose(&t);
    close(in[0]);
    close(in[1]);
}

Test(virtio, state_survives_destroy_and_restore_with_requests_in_flight)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    uint8_t data[512];
    memset(data, 0x5a, sizeof(data));
    HVT_OK(hvc_vm_write(t.vm, 0x300000, data, sizeof(data)));
    /* two requests published, never notified: in flight at the save */
    vq_blk_request(&t, 0, 1, 9, 0x300000, 512);
    vq_blk_request(&t, 1, 0, 9, 0x301000, 512); /* reads back the write */
    vq_publish(&t, 0, 0, 0);
    vq_publish(&t, 0, 1, 3);
    HVT_OK(hvc_vm_pause(t.vm));
    size_t len = 0;
    HVT_ERR(hvc_device_save_state(dev, NULL, 0, &len), -ENOSPC);
    uint8_t *rec = malloc(len);
    HVT_OK(hvc_device_save_state(dev, rec, len, &len));
    uint8_t *ram = malloc(HVT_MEM);
    HVT_OK(hvc_vm_read(t.vm, 0, ram, HVT_MEM));
    HVT_OK(hvc_vm_resume(t.vm));
    vq_vclose(&t);
    int fd = open(path, O_RDONLY);
    uint8_t disk[512];
    cr_assert_eq(pread(fd, disk, 512, 9 * 512), 512);
    cr_assert_eq(disk[0], 9, "nothing was served before the save");

    /* a new VM: same memory, a fresh device, the saved state */
    hvt u;
    vq_vopen(&u);
    HVT_OK(hvc_vm_write(u.vm, 0, ram, HVT_MEM));
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.path = path;
    hvc_device *dev2;
    HVT_OK(hvc_virtio_blk_create(u.vm, &o, &dev2));
    /* damaged records are refused and change nothing */
    uint8_t *bad = malloc(len);
    memcpy(bad, rec, len);
    bad[len - 3] ^= 0x40;
    HVT_ERR(hvc_device_load_state(dev2, bad, len), -EBADMSG);
    cr_assert(strstr(hvc_last_error(), "CRC"), "%s", hvc_last_error());
    HVT_ERR(hvc_device_load_state(dev2, rec, len - 8), -EBADMSG);
    HVT_ERR(hvc_device_load_state(dev2, rec, 20), -EBADMSG);
    hvc_device *rng;
    hvc_virtio_mmio m2 = {BASE + 0x200, 6, 0};
    HVT_OK(hvc_virtio_rng_create(u.vm, &m2, NULL, &rng));
    HVT_ERR(hvc_device_load_state(rng, rec, len), -EINVAL);
    cr_assert(strstr(hvc_last_error(), "record is for a \"virtio-blk\""), "%s",
              hvc_last_error());
    HVT_OK(hvc_device_load_state(dev2, rec, len));
    /* the device looks at its queue after the load and serves both */
    vq_expect_in_flight_served(&u, fd, 9, data, 2);
    free(bad);
    free(rec);
    free(ram);
    close(fd);
    vq_vclose(&u);
    unlink(path);
}

/* The same, through a whole-VM stream (hvcore/migration.h): the VM is
 * saved with two requests published and not served, destroyed, and
 * restored by a new hypervisor handle; the restored device serves them. */
Test(virtio, whole_vm_snapshot_with_requests_in_flight)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    uint8_t data[512];
    memset(data, 0xa7, sizeof(data));
    HVT_OK(hvc_vm_write(t.vm, 0x300000, data, sizeof(data)));
    vq_blk_request(&t, 0, 1, 11, 0x300000, 512);
    vq_blk_request(&t, 1, 0, 11, 0x301000, 512);
    vq_publish(&t, 0, 0, 0);
    vq_publish(&t, 0, 1, 3);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_save_fd(t.vm, fileno(f), NULL));
    HVT_OK(hvc_vm_resume(t.vm));
    vq_vclose(&t);
    int fd = open(path, O_RDONLY);
    uint8_t disk[512];
    cr_assert_eq(pread(fd, disk, 512, 11 * 512), 512);
    cr_assert_eq(disk[0], 11, "nothing was served before the save");

    hvt u = {0};
    HVT_OK(hvc_hypervisor_open("kvm", &u.hv));
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = vq_blk_attach;
    vq_restore_disk = path;
    cr_assert_eq(lseek(fileno(f), 0, SEEK_SET), 0);
    HVT_OK(hvc_vm_restore_fd(u.hv, fileno(f), &ro, &u.vm));
    fclose(f);
    script_vm = u.vm;
    HVT_OK(hvc_vm_get_vcpu(u.vm, 0, &script_vcpu));
    /* the restored vCPU drives the restored device on */
    vq_expect_in_flight_served(&u, fd, 11, data, 3);
    close(fd);
    vq_vclose(&u);
    unlink(path);
}

Test(virtio, create_errors_and_cmdline)
{
    hvt t;
    vq_vopen(&t);
    hvc_virtio_mmio m = {0x100000, IRQ, 0}; /* inside RAM */
    HVT_ERR(hvc_virtio_rng_create(t.vm, &m, NULL, NULL), -EEXIST);
    cr_assert(strstr(hvc_last_error(), "overlaps RAM"), "%s", hvc_last_error());
    m = (hvc_virtio_mmio){BASE + 0x10, IRQ, 0};
    HVT_ERR(hvc_virtio_rng_create(t.vm, &m, NULL, NULL), -EINVAL);
    m = (hvc_virtio_mmio){BASE, 24, 0};
    HVT_ERR(hvc_virtio_rng_create(t.vm, &m, NULL, NULL), -EINVAL);
    HVT_ERR(hvc_virtio_rng_create(t.vm, NULL, NULL, NULL), -EINVAL);
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.path = "/nonexistent/disk.img";
    HVT_ERR(hvc_virtio_blk_create(t.vm, &o, NULL), -ENOENT);
    cr_assert(strstr(hvc_last_error(), "/nonexistent/disk.img"), "%s",
              hvc_last_error());
    o.path = NULL;
    HVT_ERR(hvc_virtio_blk_create(t.vm, &o, NULL), -EINVAL);
    o.path = "/dev/null"; /* a character device: no size */
    HVT_ERR(hvc_virtio_blk_create(t.vm, &o, NULL), -EINVAL);
    m = (hvc_virtio_mmio){BASE, IRQ, 0};
    HVT_OK(hvc_virtio_rng_create(t.vm, &m, "rng", NULL));
    HVT_ERR(hvc_virtio_rng_create(t.vm, &m, NULL, NULL), -EEXIST);
    m = (hvc_virtio_mmio){BASE + 0x200, 6, 0};
    HVT_OK(hvc_virtio_rng_create(t.vm, &m, NULL, NULL));
    char buf[128];
    size_t len;
    HVT_OK(hvc_virtio_cmdline(t.vm, NULL, 0, &len));
    HVT_ERR(hvc_virtio_cmdline(t.vm, buf, 10, &len), -ENOSPC);
    HVT_OK(hvc_virtio_cmdline(t.vm, buf, sizeof(buf), &len));
    cr_assert_str_eq(buf, "virtio_mmio.device=512@0xd0000000:5 "
                          "virtio_mmio.device=512@0xd0000200:6");
    cr_assert_eq(len, strlen(buf));
    vq_vclose(&t);
}

static atomic_int rung;

static void ring(void *opaque, const hvc_doorbell *db)
{
    (void)opaque;
    cr_assert_eq(db->data, 7);
    atomic_fetch_add(&rung, 1);
}

Test(virtio, doorbells_and_interrupt_eventfds)
{
    hvt t;
    vq_vopen(&t);
    hvc_doorbell db = {HVC_IO_MMIO, 4, 0xe0001000, HVC_DOORBELL_DATAMATCH,
                       0,           7};
    HVT_OK(hvc_vm_add_doorbell(t.vm, &db, ring, NULL));
    HVT_ERR(hvc_vm_add_doorbell(t.vm, &db, ring, NULL), -EEXIST);
    hvc_doorbell bad = db;
    bad.length = 3;
    HVT_ERR(hvc_vm_add_doorbell(t.vm, &bad, ring, NULL), -EINVAL);
    bad = db;
    bad.space = HVC_IO_PIO;
    HVT_ERR(hvc_vm_add_doorbell(t.vm, &bad, ring, NULL), -EINVAL);
    /* the matching write rings without leaving the guest: had it exited,
     * the script would have stopped at an unclaimed MMIO access */
    struct script s = {.n = 0};
    s.ops[s.n++] = (struct op){0xe0001000, 7, 4, OP_WRITE};
    s.ops[s.n++] = (struct op){0xe0001000, 7, 4, OP_WRITE};
    vq_run(&t, &s);
    for (int i = 0; i < 400 && atomic_load(&rung) == 0; i++)
        usleep(2500);
    cr_assert_geq(atomic_load(&rung), 1, "the doorbell never rang");
    /* another value is an ordinary, unclaimed access */
    s.n = 0;
    s.ops[s.n++] = (struct op){0xe0001000, 8, 4, OP_WRITE};
    s.ops[s.n++] = (struct op){0, 0, 0, OP_END};
    HVT_OK(hvc_vm_write(t.vm, DATA_IN, s.ops, s.n * sizeof(struct op)));
    hvc_vcpu_mode_options m = HVC_VCPU_MODE_OPTIONS_INIT;
    m.mode = HVC_X86_MODE_LONG64;
    m.entry = GUEST_LOAD;
    m.stack = GUEST_STACK;
    m.tables_addr = GUEST_TABLES;
    HVT_OK(hvc_vcpu_set_mode(script_vcpu, &m));
    const hvc_exit *e;
    HVT_OK(hvc_vcpu_run(script_vcpu, &e));
    cr_assert_eq(e->reason, HVC_EXIT_MMIO);
    cr_assert_eq(e->u.mmio.addr, 0xe0001000);
    cr_assert_eq(*(uint32_t *)e->u.mmio.data, 8);
    HVT_OK(hvc_vm_remove_doorbell(t.vm, &db));
    HVT_ERR(hvc_vm_remove_doorbell(t.vm, &db), -ENOENT);

    int fd1, fd2;
    HVT_OK(hvc_vm_irq_eventfd(t.vm, 5, &fd1));
    HVT_OK(hvc_vm_irq_eventfd(t.vm, 5, &fd2));
    cr_assert_eq(fd1, fd2, "one eventfd per GSI");
    uint64_t one = 1;
    cr_assert_eq(write(fd1, &one, 8), 8);
    HVT_ERR(hvc_vm_irq_eventfd(t.vm, 24, &fd1), -EINVAL);
    vq_vclose(&t);
    hvt n;
    hvt_open(&n, HVC_VM_NO_IRQCHIP);
    HVT_ERR(hvc_vm_irq_eventfd(n.vm, 5, &fd1), -ENOTSUP);
    hvt_close(&n);
}

/* Found by tests/fuzz/fuzz_io: a guest that wrote status bits virtio does
 * not define (0x6000003) had them kept, saved, and refused by every load,
 * so its VM's snapshots no longer restored. They are dropped on write. */
Test(virtio, undefined_status_bits_keep_the_state_loadable)
{
    hvt t;
    vq_vopen(&t);
    hvc_virtio_mmio m = {BASE, IRQ, 0};
    hvc_device *dev;
    HVT_OK(hvc_virtio_rng_create(t.vm, &m, NULL, &dev));
    struct script s = {.n = 0};
    vq_w32(&s, 0x070, 0x6000003);
    int st = vq_r32(&s, 0x070);
    vq_w32(&s, 0x070, 0xffff0083);
    int st2 = vq_r32(&s, 0x070);
    vq_run(&t, &s);
    cr_assert_eq(s.ops[st].value, 3, "status 0x%llx",
                 (unsigned long long)s.ops[st].value);
    cr_assert_eq(s.ops[st2].value, 0x83, "status 0x%llx",
                 (unsigned long long)s.ops[st2].value);
    uint8_t rec[1024];
    size_t len;
    HVT_OK(hvc_device_save_state(dev, rec, sizeof(rec), &len));
    HVT_OK(hvc_device_load_state(dev, rec, len));
    vq_vclose(&t);
}

/* Found by tests/fuzz/fuzz_io: features a driver wrote but the device does
 * not offer (it then refuses FEATURES_OK) were saved, and the load refused
 * them. They load as long as FEATURES_OK is clear; with it set they are
 * still refused. */
Test(virtio, unoffered_driver_features_keep_the_state_loadable)
{
    hvt t;
    vq_vopen(&t);
    hvc_virtio_mmio m = {BASE, IRQ, 0};
    hvc_device *dev;
    hvc_virtio_console_options co = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
    co.mmio = m;
    HVT_OK(hvc_virtio_console_create(t.vm, &co, &dev));
    struct script s = {.n = 0};
    vq_w32(&s, 0x070, 3);
    vq_w32(&s, 0x024, 0);
    vq_w32(&s, 0x020, 1); /* bit 0: not offered */
    vq_w32(&s, 0x070, 0xb);
    int st = vq_r32(&s, 0x070);
    vq_run(&t, &s);
    cr_assert_eq(s.ops[st].value, 3, "FEATURES_OK was accepted");
    uint8_t rec[1024];
    size_t len;
    HVT_OK(hvc_device_save_state(dev, rec, sizeof(rec), &len));
    HVT_OK(hvc_device_load_state(dev, rec, len));
    vq_vclose(&t);
}

/* What virtio-blk reads into guest memory, through host pointers on its
 * worker thread, is reported to dirty tracking before the request is
 * used: a live migration copies the page again. */
Test(virtio, blk_reads_mark_guest_pages_dirty)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    hvc_dirty_options o = HVC_DIRTY_OPTIONS_INIT;
    o.flags = HVC_DIRTY_START_CLEAN;
    int r = hvc_memory_dirty_start(t.ram, &o);
    if (r == -ENOTSUP)
        cr_skip_test("no dirty tracking: %s", hvc_last_error());
    HVT_OK(r);
    size_t bytes = hvc_memory_dirty_bitmap_size(t.ram);
    uint64_t *bm = calloc(1, bytes);
    vq_blk_request(&t, 0, 0 /* IN */, 3, 0x350000, 2 * 4096);
    vq_publish(&t, 0, 0, 0);
    HVT_OK(hvc_memory_dirty_fetch(t.ram, bm, bytes, NULL));
    vq_notify_wait(&t, 0, 1);
    cr_assert_eq(vq_blk_status(&t, 0), 0);
    HVT_OK(hvc_memory_dirty_fetch(t.ram, bm, bytes, NULL));
    for (uint64_t p = 0x350; p < 0x352; p++)
        cr_assert(bm[p / 64] & (1ull << (p % 64)),
                  "page 0x%llx, read into by the device, is not dirty",
                  (unsigned long long)p);
    free(bm);
    HVT_OK(hvc_memory_dirty_stop(t.ram));
    vq_vclose(&t);
    unlink(path);
}

/* A state record whose ready queue has its device ring in read-only
 * memory is refused on load, as the driver's own QUEUE_READY would be:
 * the device would otherwise write into a ROM through its host mapping. */
Test(virtio, state_with_the_used_ring_in_rom_is_refused)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    HVT_OK(hvc_vm_pause(t.vm));
    uint8_t rec[4096];
    size_t len;
    HVT_OK(hvc_device_save_state(dev, rec, sizeof(rec), &len));
    HVT_OK(hvc_vm_resume(t.vm));
    vq_vclose(&t);

    /* the same layout, but the page of the used ring is a ROM */
    hvc_hypervisor *hv;
    hvc_vm *vm;
    HVT_OK(hvc_hypervisor_open("kvm", &hv));
    hvc_vm_options vo = HVC_VM_OPTIONS_INIT;
    HVT_OK(hvc_vm_create(hv, &vo, &vm));
    static const struct {
        uint64_t at, len;
        uint32_t flags;
    } map[] = {{0, USED, 0},
               {USED, 0x1000, HVC_MEMORY_READONLY},
               {USED + 0x1000, HVT_MEM - USED - 0x1000, 0}};
    hvc_memory_region *r;
    for (size_t i = 0; i < 3; i++) {
        hvc_memory_options m = HVC_MEMORY_OPTIONS_INIT;
        m.guest_addr = map[i].at;
        m.length = map[i].len;
        m.flags = map[i].flags;
        HVT_OK(hvc_vm_add_memory(vm, &m, &r));
    }
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.path = path;
    hvc_device *dev2;
    HVT_OK(hvc_virtio_blk_create(vm, &o, &dev2));
    HVT_ERR(hvc_device_load_state(dev2, rec, len), -EBADMSG);
    cr_assert(strstr(hvc_last_error(), "read-only"), "%s", hvc_last_error());
    /* nothing was applied: the device's queue is still off */
    uint8_t now[4096];
    size_t nlen;
    HVT_OK(hvc_vm_pause(vm));
    HVT_OK(hvc_device_save_state(dev2, now, sizeof(now), &nlen));
    cr_assert(nlen != len || memcmp(now, rec, len) != 0,
              "the refused state was applied");
    HVT_OK(hvc_vm_destroy(vm));
    HVT_OK(hvc_hypervisor_close(hv));
    unlink(path);
}
