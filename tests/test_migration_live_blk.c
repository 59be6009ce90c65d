/* A virtio-blk request in flight across a live migration's switchover:
 * the driver published a write and a read of it back without notifying,
 * the VM (its device included) moves to a new VM by hvc_vm_migrate_send
 * and hvc_vm_migrate_receive over a socket pair, and the destination's
 * device serves both; the source's device, paused for good, never does. */
#include "vqueue.h"

#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(migration_live_blk, .init = hvt_require_kvm, .timeout = 120);

struct receiver {
    hvc_hypervisor *hv;
    int fd;
    int r;
    char why[512];
    hvc_vm *vm;
    pthread_t t;
};

static void *receive(void *arg)
{
    struct receiver *rc = arg;
    hvc_restore_options ro = HVC_RESTORE_OPTIONS_INIT;
    ro.setup = vq_blk_attach;
    rc->r = hvc_vm_migrate_receive(rc->hv, rc->fd, &ro, &rc->vm);
    if (rc->r < 0)
        snprintf(rc->why, sizeof(rc->why), "%s", hvc_last_error());
    return NULL;
}

Test(migration_live_blk, requests_in_flight_are_served_on_the_destination)
{
    hvt t;
    char path[64];
    hvc_device *dev;
    vq_blk_setup(&t, path, &dev);
    uint8_t data[512];
    memset(data, 0x3c, sizeof(data));
    HVT_OK(hvc_vm_write(t.vm, 0x300000, data, sizeof(data)));
    vq_blk_request(&t, 0, 1, 13, 0x300000, 512);
    vq_blk_request(&t, 1, 0, 13, 0x301000, 512);
    vq_publish(&t, 0, 0, 0);
    vq_publish(&t, 0, 1, 3);

    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct receiver rc = {.fd = sv[1]};
    HVT_OK(hvc_hypervisor_open("kvm", &rc.hv));
    vq_restore_disk = path;
    cr_assert_eq(pthread_create(&rc.t, NULL, receive, &rc), 0);
    hvc_migrate_stats st = HVC_MIGRATE_STATS_INIT;
    HVT_OK(hvc_vm_migrate_send(t.vm, sv[0], NULL, &st));
    pthread_join(rc.t, NULL);
    cr_assert_eq(rc.r, 0, "receive: %s", rc.why);
    cr_assert_eq(st.completed, 1);
    /* the source is paused for good: its device served nothing */
    HVT_ERR(hvc_vm_resume(t.vm), -EPERM);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    uint16_t used;
    HVT_OK(hvc_vm_read(t.vm, USED + 2, &used, 2));
    cr_assert_eq(used, 0, "the source's device served a request");

    /* the destination's restored vCPU drives its device on */
    hvt u = {.hv = rc.hv, .vm = rc.vm};
    script_vm = u.vm;
    HVT_OK(hvc_vm_get_vcpu(u.vm, 0, &script_vcpu));
    vq_expect_in_flight_served(&u, fd, 13, data, 4);
    close(fd);
    close(sv[0]);
    close(sv[1]);
    vq_vclose(&u);
    vq_vclose(&t);
    unlink(path);
}
