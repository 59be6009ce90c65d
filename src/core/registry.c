/* The compiled-in backends, in the order "auto" tries them. A plain array
 * (no constructors or linker sections) so a static link keeps them all. */
#include "internal.h"
#include "memory_host.h"

#ifdef HVCORE_HAVE_KVM
extern const hvc_backend_ops hvi_kvm_backend;
#endif
#ifdef HVCORE_HAVE_HVF
extern const hvc_backend_ops hvi_hvf_backend;
#endif

const hvc_backend_ops *const hvi_backends[] = {
#ifdef HVCORE_HAVE_KVM
    &hvi_kvm_backend,
#endif
#ifdef HVCORE_HAVE_HVF
    &hvi_hvf_backend,
#endif
    NULL,
};

const size_t hvi_backend_count =
    sizeof(hvi_backends) / sizeof(hvi_backends[0]) - 1;

/* A backend's test-only variant for this open (core17): the KVM backend's
 * strict modes (kvm_strict.c). 1 when *copy holds one. */
#ifdef HVCORE_HAVE_KVM
int hvi_kvm_variant(hvc_backend_ops *copy);
#endif
int hvi_backend_variant(const hvc_backend_ops *ops, hvc_backend_ops *copy)
{
#ifdef HVCORE_HAVE_KVM
    if (ops == &hvi_kvm_backend)
        return hvi_kvm_variant(copy);
#endif
    (void)ops;
    (void)copy;
    return 0;
}

/* NUMA placement of guest memory, from src/topology when it is built. */
#ifdef HVCORE_HAVE_TOPOLOGY
extern const struct hvi_numa_hooks hvi_topology_numa;
const struct hvi_numa_hooks *const hvi_numa = &hvi_topology_numa;
#else
const struct hvi_numa_hooks *const hvi_numa = NULL;
#endif
