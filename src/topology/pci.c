/* The host's PCI devices, through libpci. */
#define _GNU_SOURCE
#include "topo.h"

#include <errno.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../os/lazy.h"

/* libpci is loaded the first time the host's PCI devices are listed
 * (src/os/lazy.h). */
#define PCI_SYMS(X)                                                            \
    X(pci_alloc)                                                               \
    X(pci_cleanup)                                                             \
    X(pci_init)                                                                \
    X(pci_scan_bus)                                                            \
    X(pci_fill_info)                                                           \
    X(pci_lookup_name)                                                         \
    X(pci_read_byte)
HVI_LAZY_TABLE(pci, HVCORE_SONAME_PCI, PCI_SYMS)
#define pci_alloc HVI_LAZY_USE(pci, pci_alloc)
#define pci_cleanup HVI_LAZY_USE(pci, pci_cleanup)
#define pci_init HVI_LAZY_USE(pci, pci_init)
#define pci_scan_bus HVI_LAZY_USE(pci, pci_scan_bus)
#define pci_fill_info HVI_LAZY_USE(pci, pci_fill_info)
#define pci_lookup_name HVI_LAZY_USE(pci, pci_lookup_name)
#define pci_read_byte HVI_LAZY_USE(pci, pci_read_byte)

/* libpci reports a failure by calling pci_access::error, which must not
 * return (its default exits the process). Ours records the message and
 * jumps back to the scan on this thread; the callback gets no context
 * pointer, hence thread-locals. */
static _Thread_local jmp_buf *pci_jump;
static _Thread_local char pci_msg[256];

__attribute__((noreturn, format(printf, 1, 2))) static void pci_fail(char *fmt,
                                                                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pci_msg, sizeof(pci_msg), fmt, ap);
    va_end(ap);
    longjmp(*pci_jump, 1);
}

/* Warnings (a missing pci.ids, say) only cost names, which are then NULL;
 * a library does not write to the caller's stderr, so they go to the log
 * hook. libpci's debug output stays off. */
__attribute__((format(printf, 1, 2))) static void pci_warn(char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    hvi_log(HVC_LOG_WARN, "libpci: %s", msg);
}

__attribute__((format(printf, 1, 2))) static void pci_quiet(char *fmt, ...)
{
    (void)fmt;
}

static const char *lookup(struct pci_access *a, char *buf, int size, int flags,
                          unsigned x, unsigned y)
{
    /* PCI_LOOKUP_NO_NUMBERS: NULL, not a made-up "Device 1234", for an id
     * the database lacks. PCI_LOOKUP_NO_HWDB: pci.ids itself, not udev's
     * compiled copy of it; where udev has no hwdb.bin, libpci would
     * create (and leak) a udev context on every lookup. */
    flags |= PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB;
    return pci_lookup_name(a, buf, size, flags, x, y);
}

static int add_device(hvc_topology *t, struct pci_access *a, struct pci_dev *p)
{
    int fill = PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_NUMA_NODE;
#ifdef PCI_FILL_CLASS_EXT
    fill |= PCI_FILL_CLASS_EXT;
#endif
    pci_fill_info(p, fill);
    hvc_pci_device d = HVC_PCI_DEVICE_INIT;
    d.domain = (uint32_t)p->domain;
    d.bus = p->bus;
    d.device = p->dev;
    d.function = p->func;
    d.vendor_id = p->vendor_id;
    d.device_id = p->device_id;
#ifdef PCI_FILL_CLASS_EXT
    d.class_code = (uint32_t)p->device_class << 8 | p->prog_if;
#else
    d.class_code =
        (uint32_t)p->device_class << 8 | pci_read_byte(p, PCI_CLASS_PROG);
#endif
    d.numa_node = p->numa_node < 0 ? -1 : p->numa_node;
    char vendor[256], device[256], cls[256];
    d.vendor_name =
        lookup(a, vendor, sizeof(vendor), PCI_LOOKUP_VENDOR, p->vendor_id, 0);
    d.device_name = lookup(a, device, sizeof(device), PCI_LOOKUP_DEVICE,
                           p->vendor_id, p->device_id);
    d.class_name =
        lookup(a, cls, sizeof(cls), PCI_LOOKUP_CLASS, p->device_class, 0);
    return hvi_topo_add_pci(t, &d);
}

static int scan(hvc_topology *t, struct pci_access *a)
{
    pci_init(a);
    pci_scan_bus(a);
    for (struct pci_dev *p = a->devices; p; p = p->next) {
        int r = add_device(t, a, p);
        if (r < 0)
            return r;
    }
    return 0;
}

int hvi_host_pci(hvc_topology *t)
{
    int loaded = hvi_lazy_pci();
    if (loaded < 0)
        return loaded;
    struct pci_access *a = pci_alloc();
    a->error = pci_fail;
    a->warning = pci_warn;
    a->debug = pci_quiet;
    /* sysfs only: libpci would otherwise fall back to poking config space
     * through I/O ports, which a library has no business doing. */
    a->method = PCI_ACCESS_SYS_BUS_PCI;
    /* Names from the local pci.ids, never from the network or a cache
     * file in the caller's home directory. */
    a->id_lookup_mode = 0;

    jmp_buf here;
    jmp_buf *outer = pci_jump;
    pci_jump = &here;
    volatile int r = -ENODEV;
    if (setjmp(here) == 0)
        r = scan(t, a);
    else
        r = hvi_error(-ENODEV,
                      "libpci cannot list the PCI devices in "
                      "/sys/bus/pci: %s",
                      pci_msg);
    /* If a failure left libpci half-way, cleanup still frees what it
     * linked; a failure inside cleanup lands here again, harmlessly. */
    if (setjmp(here) == 0)
        pci_cleanup(a);
    pci_jump = outer;
    return r;
}
