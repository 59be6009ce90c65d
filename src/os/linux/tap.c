/* Tap interfaces for virtio-net (src/os/os.h): opening one by name with a
 * virtio-net header on every frame, adopting a descriptor a caller opened,
 * offloads, and one-packet reads and writes. */
#define _GNU_SOURCE
#include "../os.h"

#include "../../core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VNET_HDR_LEN 12 /* struct virtio_net_hdr_v1 */

static int setup(int fd, const char *name)
{
    int sz = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0)
        return hvi_error(-errno, "tap \"%s\": setting its header size: %s",
                         HVI_QUOTE(name), hvc_strerror(-errno));
    /* no offload until the driver negotiates some */
    if (ioctl(fd, TUNSETOFFLOAD, 0) < 0)
        return hvi_error(-errno, "tap \"%s\": clearing its offloads: %s",
                         HVI_QUOTE(name), hvc_strerror(-errno));
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return hvi_error(-errno, "tap \"%s\": O_NONBLOCK: %s", HVI_QUOTE(name),
                         hvc_strerror(-errno));
    return 0;
}

int hvi_os_tap_open(const char *name, int *out)
{
    if (!name || !*name || strlen(name) >= IFNAMSIZ)
        return hvi_error(-EINVAL, "tap name \"%s\" is empty or longer than %d",
                         HVI_QUOTE(name ? name : ""), IFNAMSIZ - 1);
    /* TUNSETIFF would create a missing interface: only open existing ones */
    if (if_nametoindex(name) == 0)
        return hvi_error(-ENODEV, "tap \"%s\": no such interface",
                         HVI_QUOTE(name));
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return hvi_error(-errno, "tap \"%s\": opening /dev/net/tun: %s",
                         HVI_QUOTE(name), hvc_strerror(-errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = -errno;
        close(fd);
        if (e == -EINVAL)
            return hvi_error(e, "tap \"%s\": not a tap interface",
                             HVI_QUOTE(name));
        return hvi_error(e, "tap \"%s\": %s%s", HVI_QUOTE(name),
                         hvc_strerror(e),
                         e == -EBUSY ? " (another process holds it)" : "");
    }
    int r = setup(fd, name);
    if (r < 0) {
        close(fd);
        return r;
    }
    *out = fd;
    return 0;
}

int hvi_os_tap_adopt(int fd, char name[HVI_OS_TAP_NAME_MAX])
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF, &ifr) < 0)
        return hvi_error(-EINVAL, "descriptor %d is not a tap: %s", fd,
                         hvc_strerror(-errno));
    if (!(ifr.ifr_flags & IFF_TAP) || !(ifr.ifr_flags & IFF_VNET_HDR) ||
        !(ifr.ifr_flags & IFF_NO_PI))
        return hvi_error(-EINVAL,
                         "descriptor %d (\"%s\") is not a tap with "
                         "IFF_NO_PI and IFF_VNET_HDR",
                         fd, HVI_QUOTE(ifr.ifr_name));
    snprintf(name, HVI_OS_TAP_NAME_MAX, "%s", ifr.ifr_name);
    return setup(fd, name);
}

int hvi_os_tap_set_offload(int fd, unsigned bits)
{
    unsigned long f = 0;
    if (bits & HVI_OS_TAP_CSUM)
        f |= TUN_F_CSUM;
    if (bits & HVI_OS_TAP_TSO4)
        f |= TUN_F_TSO4;
    if (bits & HVI_OS_TAP_TSO6)
        f |= TUN_F_TSO6;
    if (bits & HVI_OS_TAP_TSO_ECN)
        f |= TUN_F_TSO_ECN;
    if (ioctl(fd, TUNSETOFFLOAD, f) < 0)
        return hvi_error(-errno, "tap offloads 0x%lx: %s", f,
                         hvc_strerror(-errno));
    return 0;
}

long hvi_os_tap_read(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

long hvi_os_tap_write(int fd, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = write(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}
