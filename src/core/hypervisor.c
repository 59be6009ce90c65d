/* Opening backends and querying capabilities. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t hvc_backend_count(void)
{
    return hvi_backend_count;
}

const char *hvc_backend_name(size_t index)
{
    return index < hvi_backend_count ? hvi_backends[index]->name : NULL;
}

static const hvc_backend_ops *find_backend(const char *name)
{
    for (size_t i = 0; i < hvi_backend_count; i++)
        if (strcmp(hvi_backends[i]->name, name) == 0)
            return hvi_backends[i];
    return NULL;
}

static int unknown_backend(const char *name)
{
    if (hvi_backend_count == 0)
        return hvi_error(-ENOENT,
                         "backend \"%s\": this libhvcore was built without "
                         "any accelerator backend",
                         name);
    char list[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < hvi_backend_count && used < sizeof(list); i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                 i ? ", " : "", hvi_backends[i]->name);
    return hvi_error(-ENOENT, "no backend named \"%s\" (compiled in: %s)", name,
                     list);
}

int hvc_backend_probe(const char *name)
{
    if (!name)
        return hvi_error(-EINVAL, "hvc_backend_probe: name is NULL");
    const hvc_backend_ops *ops = find_backend(name);
    if (!ops)
        return unknown_backend(name);
    return ops->probe();
}

/* VMs in this process per compiled-in backend (HVC_CAP_MAX_VMS). */
#define MAX_BACKENDS 8
static atomic_uint vms_per_backend[MAX_BACKENDS];

static size_t backend_index(const hvc_backend_ops *ops)
{
    for (size_t i = 0; i < hvi_backend_count; i++)
        if (hvi_backends[i] == ops)
            return i < MAX_BACKENDS ? i : MAX_BACKENDS - 1;
    return MAX_BACKENDS - 1;
}

int hvi_get_cap(hvc_hypervisor *hv, int cap, uint64_t *value)
{
    int r = hv->ops->get_cap(hv->priv, cap, value);
    if (r != -EINVAL)
        return r;
    if (cap == HVC_CAP_MAX_VMS) {
        *value = 0; /* the backend sets no limit */
        return 0;
    }
    if (cap == HVC_CAP_PAGE_SIZE) {
        *value = HVC_PAGE_SIZE;
        return 0;
    }
    return r;
}

int hvi_vm_count_take(hvc_hypervisor *hv)
{
    atomic_uint *n = &vms_per_backend[hv->index];
    unsigned cur = atomic_load(n);
    for (;;) {
        if (hv->max_vms && cur >= hv->max_vms)
            return hvi_error(-EBUSY,
                             "backend %s allows %llu VM(s) per process and "
                             "%u exist; destroy one first",
                             hv->ops->name, (unsigned long long)hv->max_vms,
                             cur);
        if (atomic_compare_exchange_weak(n, &cur, cur + 1))
            return 0;
    }
}

void hvi_vm_count_put(hvc_hypervisor *hv)
{
    atomic_fetch_sub(&vms_per_backend[hv->index], 1);
}

static int open_ops(const hvc_backend_ops *ops, hvc_hypervisor **out)
{
    if (ops->version < HVC_BACKEND_OPS_VERSION)
        return hvi_error(-ENOTSUP,
                         "backend %s was written for backend ops version %u; "
                         "this library needs %u",
                         ops->name, ops->version, HVC_BACKEND_OPS_VERSION);
    hvc_hypervisor *hv = calloc(1, sizeof(*hv));
    if (!hv)
        return hvi_error(-ENOMEM, "out of memory opening backend %s",
                         ops->name);
    hv->index = backend_index(ops);
    /* A test-only variant (registry.c) replaces the table for this open. */
    if (hvi_backend_variant(ops, &hv->variant))
        ops = &hv->variant;
    int r = ops->open(&hv->priv);
    if (r < 0) {
        free(hv);
        return r;
    }
    hv->ops = ops;
    if ((r = hvi_get_cap(hv, HVC_CAP_MAX_VMS, &hv->max_vms)) < 0) {
        ops->close(hv->priv);
        free(hv);
        return r;
    }
    atomic_init(&hv->nr_vms, 0);
    *out = hv;
    return 0;
}

int hvc_hypervisor_open(const char *name, hvc_hypervisor **out)
{
    if (!out)
        return hvi_error(-EINVAL, "hvc_hypervisor_open: out is NULL");
    if (name && strcmp(name, "auto") != 0) {
        const hvc_backend_ops *ops = find_backend(name);
        if (!ops)
            return unknown_backend(name);
        return open_ops(ops, out);
    }
    if (hvi_backend_count == 0)
        return unknown_backend("auto");
    int first_err = 0;
    char why[256] = "";
    for (size_t i = 0; i < hvi_backend_count; i++) {
        int r = open_ops(hvi_backends[i], out);
        if (r == 0)
            return 0;
        if (!first_err) {
            first_err = r;
            strncpy(why, hvc_last_error(), sizeof(why) - 1);
        }
    }
    return hvi_error(-ENOENT, "no backend can open on this host: %s", why);
}

int hvc_hypervisor_close(hvc_hypervisor *hv)
{
    if (!hv)
        return hvi_error(-EINVAL, "hvc_hypervisor_close: handle is NULL");
    unsigned n = atomic_load(&hv->nr_vms);
    if (n)
        return hvi_error(
            -EBUSY, "hypervisor still has %u VM(s); destroy them first", n);
    hv->ops->close(hv->priv);
    free(hv);
    return 0;
}

const char *hvc_hypervisor_backend(const hvc_hypervisor *hv)
{
    return hv ? hv->ops->name : NULL;
}

int hvc_hypervisor_get_cap(hvc_hypervisor *hv, int cap, uint64_t *value)
{
    if (!hv || !value)
        return hvi_error(-EINVAL, "hvc_hypervisor_get_cap: NULL argument");
    if (cap < HVC_CAP_MAX_VCPUS || cap > HVC_CAP_PAGE_SIZE)
        return hvi_error(-EINVAL, "unknown capability %d", cap);
    return hvi_get_cap(hv, cap, value);
}
