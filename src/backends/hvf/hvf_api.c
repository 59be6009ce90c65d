/* The table of Hypervisor.framework calls. On macOS it binds the framework
 * directly. On Linux the calls come from a library loaded with dlopen():
 * $HVCORE_HVF_HOST_LIBRARY when set, else the soname libhvf_host.so (the
 * KVM-hosted implementation in tests/hvf_host, never installed), so that
 * libhvcore links no test code and the backend simply fails its probe where
 * that library is absent. */
#define _GNU_SOURCE
#include "hvf.h"

#include <errno.h>
#include <stdlib.h>

struct hvi_hvf_api hvi_hvf;

#ifdef __APPLE__

#include <sys/sysctl.h>

int hvi_hvf_platform_sysctl(const char *name, void *buf, size_t len)
{
    size_t n = len;
    if (sysctlbyname(name, buf, &n, NULL, 0) != 0 || n != len)
        return -1;
    return 0;
}

int hvi_hvf_load(void)
{
    static const struct hvi_hvf_api bound = {
#define HVI_HVF_BIND(n) .n = n,
        HVI_HVF_CALLS(HVI_HVF_BIND)
#undef HVI_HVF_BIND
    };
    hvi_hvf = bound;
    return 0;
}

#else

#include <dlfcn.h>

#define HVI_HVF_SONAME "libhvf_host.so"

static const char *const call_names[] = {
#define HVI_HVF_NAME(n) #n,
    HVI_HVF_CALLS(HVI_HVF_NAME)
#undef HVI_HVF_NAME
};
#define NR_CALLS (sizeof(call_names) / sizeof(call_names[0]))

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int load_state; /* 0 not tried, 1 loaded; under load_lock */
static void *handle;
/* The platform's sysctlbyname(3), where the library provides one (macOS
 * has it in libSystem; the KVM-hosted layer answers the TSC's entry and
 * the CPU feature entries). Set with the table, read without the lock
 * afterwards. */
static int (*platform_sysctl)(const char *, void *, size_t *, void *, size_t);

int hvi_hvf_platform_sysctl(const char *name, void *buf, size_t len)
{
    size_t n = len;
    if (!platform_sysctl || platform_sysctl(name, buf, &n, NULL, 0) != 0 ||
        n != len)
        return -1;
    return 0;
}

/* A failed load is retried next time (the variable may be set later); a
 * loaded library stays loaded: the table is read without the lock. */
int hvi_hvf_load(void)
{
    pthread_mutex_lock(&load_lock);
    if (load_state == 1) {
        pthread_mutex_unlock(&load_lock);
        return 0;
    }
    const char *lib = getenv("HVCORE_HVF_HOST_LIBRARY");
    if (!lib || !*lib)
        lib = HVI_HVF_SONAME;
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        int r = hvi_error(-ENOTSUP,
                          "Hypervisor.framework is not available: cannot "
                          "load \"%s\" (set HVCORE_HVF_HOST_LIBRARY to the "
                          "KVM-hosted libhvf_host.so): %s",
                          HVI_QUOTE(lib), HVI_QUOTE(why ? why : "?"));
        pthread_mutex_unlock(&load_lock);
        return r;
    }
    void *slots[NR_CALLS];
    for (size_t i = 0; i < NR_CALLS; i++) {
        slots[i] = dlsym(h, call_names[i]);
        if (!slots[i]) {
            int r = hvi_error(-ENOTSUP, "\"%s\" lacks %s", HVI_QUOTE(lib),
                              call_names[i]);
            dlclose(h);
            pthread_mutex_unlock(&load_lock);
            return r;
        }
    }
    /* The members are function pointers in call_names' order. */
    size_t i = 0;
#define HVI_HVF_FILL(n) *(void **)&hvi_hvf.n = slots[i++];
    HVI_HVF_CALLS(HVI_HVF_FILL)
#undef HVI_HVF_FILL
    *(void **)&platform_sysctl = dlsym(h, "sysctlbyname"); /* optional */
    handle = h;
    load_state = 1;
    pthread_mutex_unlock(&load_lock);
    return 0;
}

#endif

uint64_t hvi_hvf_platform_tsc_hz(void)
{
    uint64_t hz = 0;
    if (hvi_hvf_platform_sysctl("machdep.tsc.frequency", &hz, sizeof(hz)) < 0)
        return 0;
    return hz;
}

const char *hvi_hvf_ret_name(hv_return_t ret)
{
    switch (ret) {
    case HV_SUCCESS: return "HV_SUCCESS";
    case HV_ERROR: return "HV_ERROR";
    case HV_BUSY: return "HV_BUSY";
    case HV_BAD_ARGUMENT: return "HV_BAD_ARGUMENT";
    case HV_ILLEGAL_GUEST_STATE: return "HV_ILLEGAL_GUEST_STATE";
    case HV_NO_RESOURCES: return "HV_NO_RESOURCES";
    case HV_NO_DEVICE: return "HV_NO_DEVICE";
    case HV_DENIED: return "HV_DENIED";
    case HV_UNSUPPORTED: return "HV_UNSUPPORTED";
    default: return "an unknown hv_return_t";
    }
}

static int errno_of(hv_return_t ret)
{
    switch (ret) {
    case HV_BUSY: return -EBUSY;
    case HV_BAD_ARGUMENT: return -EINVAL;
    case HV_ILLEGAL_GUEST_STATE: return -EINVAL;
    case HV_NO_RESOURCES: return -ENOMEM;
    case HV_NO_DEVICE: return -ENODEV;
    case HV_DENIED: return -EPERM;
    case HV_UNSUPPORTED: return -ENOTSUP;
    default: return -EIO;
    }
}

int hvi_hvf_fail(const char *what, hv_return_t ret)
{
    return hvi_error(errno_of(ret), "%s: %s (0x%x)", what,
                     hvi_hvf_ret_name(ret), (unsigned)ret);
}
