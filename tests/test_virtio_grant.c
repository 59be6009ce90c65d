/* Device memory grants (hvcore/device.h): a device confined to a window of
 * guest memory is asked by the driver (a host-side virtqueue driver,
 * tests/vqueue.c, with a guest doing the register accesses) to reach
 * outside it. */
#include "vqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WIN 0x200000u     /* rings at 0x200000.., request headers at BUF */
#define WIN_LEN 0x20000u  /* up to 0x220000 */
#define OUTSIDE 0x300000u /* in RAM, not granted */
#define S_OK 0
#define S_IOERR 1

static uint64_t refusals(hvc_device *dev)
{
    uint64_t n = 0;
    HVT_OK(hvc_device_grant_refusals(dev, &n));
    return n;
}

static void read_disk(const char *path, uint8_t *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, buf, len, 0), (ssize_t)len);
    close(fd);
}

Test(virtio_grant, api_defaults_checks_and_accessors)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    hvc_memory_grant g[HVC_DEVICE_MAX_GRANTS + 1];
    size_t n = 0;
    HVT_OK(hvc_device_get_grants(dev, g, 4, &n));
    cr_assert_eq(n, 1, "one default grant");
    cr_assert(g[0].gpa == HVC_GRANT_ALL_GPA &&
              g[0].length == HVC_GRANT_ALL_LENGTH);
    HVT_ERR(hvc_device_get_grants(NULL, g, 4, &n), -EINVAL);
    HVT_ERR(hvc_device_set_grants(NULL, g, 1), -EINVAL);
    HVT_ERR(hvc_device_set_grants(dev, NULL, 1), -EINVAL);
    HVT_ERR(hvc_device_grant_refusals(dev, NULL), -EINVAL);

    /* refused: too many, empty, wrapping; nothing changes */
    for (int i = 0; i <= HVC_DEVICE_MAX_GRANTS; i++)
        g[i] = (hvc_memory_grant){0x10000u * (unsigned)i, 0x1000};
    HVT_ERR(hvc_device_set_grants(dev, g, HVC_DEVICE_MAX_GRANTS + 1), -EINVAL);
    g[0] = (hvc_memory_grant){0x1000, 0};
    HVT_ERR(hvc_device_set_grants(dev, g, 1), -EINVAL);
    g[0] = (hvc_memory_grant){UINT64_MAX - 10, 12};
    HVT_ERR(hvc_device_set_grants(dev, g, 1), -EINVAL);
    HVT_OK(hvc_device_get_grants(dev, g, 4, &n));
    cr_assert(n == 1 && g[0].length == HVC_GRANT_ALL_LENGTH);

    /* overlapping and adjacent ranges merge, the result is sorted */
    hvc_memory_grant in[3] = {
        {0x5000, 0x1000}, {0x1000, 0x2000}, {0x3000, 0x800}};
    HVT_OK(hvc_device_set_grants(dev, in, 3));
    HVT_OK(hvc_device_get_grants(dev, g, 4, &n));
    cr_assert_eq(n, 2);
    cr_assert(g[0].gpa == 0x1000 && g[0].length == 0x2800, "%llx+%llx",
              (unsigned long long)g[0].gpa, (unsigned long long)g[0].length);
    cr_assert(g[1].gpa == 0x5000 && g[1].length == 0x1000);

    /* the checked accessors */
    uint8_t b[16] = {1, 2, 3};
    uint64_t before = refusals(dev);
    HVT_OK(hvc_device_write(dev, 0x1000, b, sizeof(b)));
    HVT_OK(hvc_device_read(dev, 0x37f0, b, sizeof(b)));
    HVT_ERR(hvc_device_read(dev, 0x37f8, b, sizeof(b)), -EFAULT);
    cr_assert(strstr(hvc_last_error(), "grants"), "%s", hvc_last_error());
    HVT_ERR(hvc_device_write(dev, 0x4000, b, sizeof(b)), -EFAULT);
    void *p;
    HVT_ERR(hvc_device_gpa_to_hva(dev, 0x5ff0, 0x20, &p), -EFAULT);
    HVT_OK(hvc_device_gpa_to_hva(dev, 0x5ff0, 0x10, &p));
    cr_assert_eq(refusals(dev), before + 3);

    /* nothing granted at all, then everything again */
    HVT_OK(hvc_device_set_grants(dev, NULL, 0));
    HVT_OK(hvc_device_get_grants(dev, NULL, 0, &n));
    cr_assert_eq(n, 0);
    HVT_ERR(hvc_device_read(dev, 0x1000, b, 1), -EFAULT);
    g[0] = (hvc_memory_grant){HVC_GRANT_ALL_GPA, HVC_GRANT_ALL_LENGTH};
    HVT_OK(hvc_device_set_grants(dev, g, 1));
    HVT_OK(hvc_device_read(dev, 0x1000, b, 1));
    /* a grant never makes non-RAM reachable */
    HVT_ERR(hvc_device_read(dev, HVT_MEM, b, 1), -EFAULT);
    vq_vclose(&t);
    unlink(path);
}

/* A virtio-blk device confined to [WIN, WIN+WIN_LEN): requests whose data
 * lie outside fail with IOERR, reach neither the disk nor guest memory,
 * and are counted; requests inside work. */
Test(virtio_grant, blk_confined_to_a_window)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    hvc_memory_grant win = {WIN, WIN_LEN};
    HVT_OK(hvc_device_set_grants(dev, &win, 1));

    const size_t disk_len = 64 * 512;
    uint8_t *disk0 = malloc(disk_len), *disk1 = malloc(disk_len);
    read_disk(path, disk0, disk_len);
    uint8_t pat[512];
    memset(pat, 0x77, sizeof(pat));
    HVT_OK(hvc_vm_write(t.vm, OUTSIDE, pat, sizeof(pat)));
    uint8_t poison[512];
    memset(poison, 0xcc, sizeof(poison));
    HVT_OK(hvc_vm_write(t.vm, OUTSIDE + 0x1000, poison, sizeof(poison)));
    const size_t hi = HVT_MEM - (WIN + WIN_LEN);
    uint8_t *ram0 = malloc(hi), *ram1 = malloc(hi);
    HVT_OK(hvc_vm_read(t.vm, WIN + WIN_LEN, ram0, hi));
    uint64_t r0 = refusals(dev);

    /* a write from outside the window, a read into it */
    vq_blk_request(&t, 0, 1, 5, OUTSIDE, 512);
    vq_blk_request(&t, 1, 0, 3, OUTSIDE + 0x1000, 512);
    vq_publish(&t, 0, 0, 0);
    vq_publish(&t, 0, 1, 3);
    vq_notify_wait(&t, 0, 2);
    cr_assert_eq(vq_blk_status(&t, 0), S_IOERR);
    cr_assert_eq(vq_blk_status(&t, 1), S_IOERR);
    cr_assert_geq(refusals(dev), r0 + 2, "refusals %llu -> %llu",
                  (unsigned long long)r0, (unsigned long long)refusals(dev));
    uint32_t st = vq_status_reg(&t);
    cr_assert_eq(st & 0xff, 0xf, "the device is still live: 0x%x", st);
    read_disk(path, disk1, disk_len);
    cr_assert(memcmp(disk0, disk1, disk_len) == 0, "the disk changed");
    HVT_OK(hvc_vm_read(t.vm, WIN + WIN_LEN, ram1, hi));
    cr_assert(memcmp(ram0, ram1, hi) == 0,
              "guest memory outside the window changed");

    /* the same requests inside the window work */
    uint8_t back[512];
    HVT_OK(hvc_vm_write(t.vm, BUF + 0x8000, pat, sizeof(pat)));
    vq_blk_request(&t, 1, 1, 5, BUF + 0x8000, 512);
    vq_blk_request(&t, 0, 0, 5, BUF + 0x9000, 512);
    vq_publish(&t, 0, 2, 3);
    vq_publish(&t, 0, 3, 0);
    uint64_t r1 = refusals(dev);
    vq_notify_wait(&t, 0, 4);
    cr_assert_eq(vq_blk_status(&t, 1), S_OK);
    cr_assert_eq(vq_blk_status(&t, 0), S_OK);
    HVT_OK(hvc_vm_read(t.vm, BUF + 0x9000, back, sizeof(back)));
    cr_assert(memcmp(back, pat, sizeof(back)) == 0);
    cr_assert_eq(refusals(dev), r1, "nothing refused inside the window");
    read_disk(path, disk1, disk_len);
    cr_assert(memcmp(disk1 + 5 * 512, pat, 512) == 0);

    /* a status byte outside the window: no status can be given, so the
     * device needs a reset; still nothing reaches the disk */
    read_disk(path, disk0, disk_len);
    vq_blk_request(&t, 1, 1, 6, BUF + 0x8000, 512);
    vq_put_desc(&t, 0, 5, (struct desc){OUTSIDE + 0x2000, 1, 2, 0});
    vq_publish(&t, 0, 4, 3);
    struct script s = {.n = 0};
    vq_w32(&s, 0x050, 0);
    vq_run(&t, &s);
    for (int i = 0; i < 1000 && !(vq_status_reg(&t) & 0x40); i++)
        usleep(1000);
    cr_assert(vq_status_reg(&t) & 0x40, "DEVICE_NEEDS_RESET expected");
    read_disk(path, disk1, disk_len);
    cr_assert(memcmp(disk0, disk1, disk_len) == 0, "the disk changed");
    uint8_t sb;
    HVT_OK(hvc_vm_read(t.vm, OUTSIDE + 0x2000, &sb, 1));
    cr_assert_eq(sb, 0, "the status byte outside the window was written");
    free(disk0);
    free(disk1);
    free(ram0);
    free(ram1);
    vq_vclose(&t);
    unlink(path);
}

/* Rings outside the grant: the queue is refused when enabled. */
Test(virtio_grant, rings_outside_the_grant_fail_the_device)
{
    hvt t;
    vq_vopen(&t);
    char path[64];
    int fd = vq_make_disk(path, 64 * 512);
    close(fd);
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio.base = BASE;
    o.mmio.irq = IRQ;
    o.path = path;
    hvc_device *dev;
    HVT_OK(hvc_virtio_blk_create(t.vm, &o, &dev));
    hvc_memory_grant win = {OUTSIDE, 0x10000};
    HVT_OK(hvc_device_set_grants(dev, &win, 1));
    struct script s = {.n = 0};
    vq_w32(&s, 0x070, 0);
    vq_w32(&s, 0x070, 1);
    vq_w32(&s, 0x070, 3);
    vq_w32(&s, 0x024, 1);
    vq_w32(&s, 0x020, 1);
    vq_w32(&s, 0x070, 0xb);
    vq_w32(&s, 0x030, 0);
    vq_w32(&s, 0x038, QSIZE);
    vq_w32(&s, 0x080, DESC);
    vq_w32(&s, 0x090, AVAIL);
    vq_w32(&s, 0x0a0, USED);
    vq_w32(&s, 0x044, 1);
    int ready = vq_r32(&s, 0x044);
    int st = vq_r32(&s, 0x070);
    vq_run(&t, &s);
    cr_assert_eq(s.ops[ready].value, 0, "the queue became ready");
    cr_assert(s.ops[st].value & 0x40, "status 0x%llx",
              (unsigned long long)s.ops[st].value);
    cr_assert_geq(refusals(dev), 1);
    vq_vclose(&t);
    unlink(path);
}

/* Grants are part of the device's state record and come back with it; a
 * device with the default grants keeps writing format-1 records. */
Test(virtio_grant, grants_survive_save_and_restore)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    HVT_OK(hvc_vm_pause(t.vm));
    size_t len = 0;
    HVT_ERR(hvc_device_save_state(dev, NULL, 0, &len), -ENOSPC);
    uint8_t *rec1 = malloc(len);
    HVT_OK(hvc_device_save_state(dev, rec1, len, &len));
    cr_assert_eq(rec1[4], 1, "default grants: a format-1 record");
    size_t len1 = len;
    hvc_memory_grant win[2] = {{WIN, WIN_LEN}, {OUTSIDE, 0x1000}};
    HVT_OK(hvc_device_set_grants(dev, win, 2));
    HVT_ERR(hvc_device_save_state(dev, NULL, 0, &len), -ENOSPC);
    cr_assert_eq(len, len1 + 8 + 2 * 16);
    uint8_t *rec = malloc(len);
    HVT_OK(hvc_device_save_state(dev, rec, len, &len));
    cr_assert_eq(rec[4], 2, "narrowed grants: a format-2 record");
    uint8_t *ram = malloc(HVT_MEM);
    HVT_OK(hvc_vm_read(t.vm, 0, ram, HVT_MEM));
    HVT_OK(hvc_vm_resume(t.vm));
    vq_vclose(&t);

    hvt u;
    vq_vopen(&u);
    HVT_OK(hvc_vm_write(u.vm, 0, ram, HVT_MEM));
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.path = path;
    hvc_device *dev2;
    HVT_OK(hvc_virtio_blk_create(u.vm, &o, &dev2));
    HVT_OK(hvc_vm_pause(u.vm));
    /* a damaged record changes nothing */
    HVT_ERR(hvc_device_load_state(dev2, rec, len - 1), -EBADMSG);
    hvc_memory_grant g[4];
    size_t n;
    HVT_OK(hvc_device_get_grants(dev2, g, 4, &n));
    cr_assert(n == 1 && g[0].length == HVC_GRANT_ALL_LENGTH);
    HVT_OK(hvc_device_load_state(dev2, rec, len));
    HVT_OK(hvc_device_get_grants(dev2, g, 4, &n));
    cr_assert_eq(n, 2);
    cr_assert(g[0].gpa == WIN && g[0].length == WIN_LEN);
    cr_assert(g[1].gpa == OUTSIDE && g[1].length == 0x1000);
    /* a format-1 record leaves the grants as they are */
    HVT_OK(hvc_device_load_state(dev2, rec1, len1));
    HVT_OK(hvc_device_get_grants(dev2, g, 4, &n));
    cr_assert_eq(n, 2);
    HVT_OK(hvc_vm_resume(u.vm));

    /* the restored device is confined: a request from outside fails */
    uint64_t r0 = refusals(dev2);
    vq_blk_request(&u, 0, 1, 5, OUTSIDE + 0x8000, 512);
    vq_publish(&u, 0, 0, 0);
    vq_notify_wait(&u, 0, 1);
    cr_assert_eq(vq_blk_status(&u, 0), S_IOERR);
    cr_assert_gt(refusals(dev2), r0);
    free(rec);
    free(rec1);
    free(ram);
    vq_vclose(&u);
    unlink(path);
}

static const char *restore_disk;

static int blk_attach(void *opaque, hvc_vm *vm, const void *user, size_t len)
{
    (void)opaque;
    (void)user;
    (void)len;
    hvc_virtio_blk_options o = HVC_VIRTIO_BLK_OPTIONS_INIT;
    o.mmio = (hvc_virtio_mmio){BASE, IRQ, 0};
    o.path = restore_disk;
    return hvc_virtio_blk_create(vm, &o, NULL);
}

/* Through a whole-VM stream: a request from outside the window, published
 * before the save and served after the restore, still fails. */
Test(virtio_grant, grants_survive_a_whole_vm_stream)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    hvc_memory_grant win = {WIN, WIN_LEN};
    HVT_OK(hvc_device_set_grants(dev, &win, 1));
    uint8_t pat[512];
    memset(pat, 0x3c, sizeof(pat));
    HVT_OK(hvc_vm_write(t.vm, OUTSIDE, pat, sizeof(pat)));
    vq_blk_request(&t, 0, 1, 12, OUTSIDE, 512);
    vq_publish(&t, 0, 0, 0);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    HVT_OK(hvc_vm_pause(t.vm));
    HVT_OK(hvc_vm_save_fd(t.vm, fileno(f), NULL));
    HVT_OK(hvc_vm_resume(t.vm));
    vq_vclose(&t);
    const size_t disk_len = 64 * 512;
    uint8_t *disk0 = malloc(disk_len), *disk1 = malloc(disk_len);
    read_disk(path, disk0, disk_len);

    hvt u = {0};
    HVT_OK(hvc_hypervisor_open("kvm", &u.hv));
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = blk_attach;
    restore_disk = path;
    cr_assert_eq(lseek(fileno(f), 0, SEEK_SET), 0);
    HVT_OK(hvc_vm_restore_fd(u.hv, fileno(f), &ro, &u.vm));
    fclose(f);
    script_vm = u.vm;
    HVT_OK(hvc_vm_get_vcpu(u.vm, 0, &script_vcpu));
    hvc_device *all[16], *dev2 = NULL;
    size_t n;
    HVT_OK(hvc_vm_list_devices(u.vm, all, 16, &n));
    for (size_t i = 0; i < n && i < 16; i++)
        if (strcmp(hvc_device_type(all[i]), "virtio-blk") == 0)
            dev2 = all[i];
    cr_assert_not_null(dev2);
    hvc_memory_grant g[2];
    HVT_OK(hvc_device_get_grants(dev2, g, 2, &n));
    cr_assert(n == 1 && g[0].gpa == WIN && g[0].length == WIN_LEN);
    vq_notify_wait(&u, 0, 1);
    cr_assert_eq(vq_blk_status(&u, 0), S_IOERR);
    uint64_t r = 0;
    HVT_OK(hvc_device_grant_refusals(dev2, &r));
    cr_assert_geq(r, 1);
    read_disk(path, disk1, disk_len);
    cr_assert(memcmp(disk0, disk1, disk_len) == 0, "the disk changed");
    free(disk0);
    free(disk1);
    vq_vclose(&u);
    unlink(path);
}

static uint32_t crc32c(const uint8_t *p, size_t n)
{
    uint32_t crc = ~0u;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* Rewrites a record's CRC after a test changed its payload. */
static void reseal(uint8_t *rec, size_t len)
{
    uint32_t crc = crc32c(rec + 48, len - 48);
    memcpy(rec + 44, &crc, 4);
}

/* Forged grant blocks with a valid CRC are refused, and change neither
 * the device's grants nor its state. */
Test(virtio_grant, forged_grant_blocks_are_refused)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    hvc_memory_grant win = {WIN, WIN_LEN};
    HVT_OK(hvc_device_set_grants(dev, &win, 1));
    HVT_OK(hvc_vm_pause(t.vm));
    size_t len = 0;
    HVT_ERR(hvc_device_save_state(dev, NULL, 0, &len), -ENOSPC);
    uint8_t *rec = malloc(len), *bad = malloc(len);
    HVT_OK(hvc_device_save_state(dev, rec, len, &len));
    hvc_memory_grant other = {OUTSIDE, 0x1000};
    HVT_OK(hvc_device_set_grants(dev, &other, 1));
    static const struct {
        size_t off;
        uint64_t value;
        unsigned width;
    } forge[] = {
        {48, 17, 4},          /* too many ranges */
        {48, 0xffffffffu, 4}, /* count past the payload */
        {48, 2, 4},           /* eats the device payload */
        {52, 1, 4},           /* reserved not zero */
        {64, 0, 8},           /* empty range */
        {56, UINT64_MAX, 8},  /* wrapping range */
    };
    for (size_t i = 0; i < sizeof(forge) / sizeof(forge[0]); i++) {
        memcpy(bad, rec, len);
        memcpy(bad + forge[i].off, &forge[i].value, forge[i].width);
        reseal(bad, len);
        int r = hvc_device_load_state(dev, bad, len);
        cr_assert(r == -EBADMSG, "case %zu: %d (%s)", i, r, hvc_last_error());
        hvc_memory_grant g[2];
        size_t n;
        HVT_OK(hvc_device_get_grants(dev, g, 2, &n));
        cr_assert(n == 1 && g[0].gpa == OUTSIDE, "case %zu changed grants", i);
    }
    /* a grant block cut short */
    memcpy(bad, rec, 52);
    uint32_t plen = 4;
    memcpy(bad + 40, &plen, 4);
    reseal(bad, 52);
    HVT_ERR(hvc_device_load_state(dev, bad, 52), -EBADMSG);
    /* the genuine record still loads */
    HVT_OK(hvc_device_load_state(dev, rec, len));
    hvc_memory_grant g[2];
    size_t n;
    HVT_OK(hvc_device_get_grants(dev, g, 2, &n));
    cr_assert(n == 1 && g[0].gpa == WIN && g[0].length == WIN_LEN);
    HVT_OK(hvc_vm_resume(t.vm));
    free(rec);
    free(bad);
    vq_vclose(&t);
    unlink(path);
}
