/* tests/hvf_host: the one entry of macOS's sysctlbyname(3) a VMM reads to
 * run a guest on Hypervisor.framework, machdep.tsc.frequency (Hz, a
 * uint64_t). macOS answers with its kernel's TSC calibration; this layer
 * answers with the Linux kernel's, which KVM reports as a vCPU's TSC rate,
 * so that a backend on this layer and the KVM backend on the same host
 * agree on the frequency to the kHz. Every other name is ENOENT, as
 * macOS says for a name it does not have. Read-only: a new value is EPERM. */
#define _GNU_SOURCE
#include "hvfh.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;
static uint64_t tsc_hz;

static void read_tsc_khz(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        return;
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm >= 0) {
        int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
        if (vcpu >= 0) {
            int khz = ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
            if (khz > 0)
                tsc_hz = (uint64_t)khz * 1000;
            close(vcpu);
        }
        close(vm);
    }
    close(kvm);
}

__attribute__((visibility("default"))) int
sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp,
             size_t newlen)
{
    if (!name) {
        errno = EINVAL;
        return -1;
    }
    if (strcmp(name, "machdep.tsc.frequency") != 0) {
        errno = ENOENT;
        return -1;
    }
    if (newp || newlen) {
        errno = EPERM;
        return -1;
    }
    pthread_once(&tsc_once, read_tsc_khz);
    if (!tsc_hz) {
        errno = ENOENT;
        return -1;
    }
    if (!oldlenp) {
        errno = EINVAL;
        return -1;
    }
    if (!oldp) { /* asks for the size */
        *oldlenp = sizeof(tsc_hz);
        return 0;
    }
    if (*oldlenp < sizeof(tsc_hz)) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(oldp, &tsc_hz, sizeof(tsc_hz));
    *oldlenp = sizeof(tsc_hz);
    return 0;
}
