/* hvrun's virtio devices: disks, network (net.c), rng and console, each in its own MMIO
 * window from 0xd0000000 with its own interrupt line from GSI 5 up (4 is
 * COM1's), described for the guest's ACPI tables. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VIRTIO_BASE 0xd0000000ull
#define FIRST_GSI 5

struct slot {
    hvc_virtio_mmio mmio;
    size_t index;
};

static hvc_virtio_mmio next_slot(size_t i)
{
    hvc_virtio_mmio m = {VIRTIO_BASE + i * HVC_VIRTIO_MMIO_SIZE,
                         (uint32_t)(FIRST_GSI + i), 0};
    return m;
}

static void describe(hvc_acpi_device *acpi, const hvc_virtio_mmio *m)
{
    memset(acpi, 0, sizeof(*acpi));
    acpi->hid = "LNRO0005";
    acpi->space = HVC_IO_MMIO;
    acpi->irq = m->irq;
    acpi->base = m->base;
    acpi->length = HVC_VIRTIO_MMIO_SIZE;
}

static void fail(const char *what)
{
    fprintf(stderr, "hvrun: %s: %s\n", what, hvrun_esc(hvc_last_error()));
    exit(HVRUN_EXIT_USAGE);
}

size_t hvrun_add_virtio(hvc_vm *vm, const struct options *o, int console_in,
                        hvc_acpi_device *acpi)
{
    size_t n = 0;
    for (uint32_t i = 0; i < o->nr_disks; i++) {
        hvc_virtio_blk_options b = HVC_VIRTIO_BLK_OPTIONS_INIT;
        b.mmio = next_slot(n);
        b.path = o->disks[i];
        /* A hand-over passed the very file the old hvrun had open. */
        char name[32];
        snprintf(name, sizeof(name), "virtio-blk%u", i);
        int passed = hvrun_handover_fd(vm, name, 0);
        if (passed >= 0) {
            b.path = NULL;
            b.fd = passed;
        }
        if (o->disk_readonly[i])
            b.flags = HVC_VIRTIO_BLK_READONLY;
        hvc_device *dev;
        if (hvc_virtio_blk_create(vm, &b, &dev) < 0)
            fail("--disk");
        hvc_memory_grant g = {o->disk_dma_gpa[i], o->disk_dma_len[i]};
        if (g.length && hvc_device_set_grants(dev, &g, 1) < 0)
            fail("--disk dma=");
        describe(&acpi[n], &b.mmio);
        n++;
    }
    n += hvrun_add_nets(vm, o, n, acpi + n);
    if (o->rng) {
        hvc_virtio_mmio m = next_slot(n);
        if (hvc_virtio_rng_create(vm, &m, NULL, NULL) < 0)
            fail("--rng");
        describe(&acpi[n], &m);
        n++;
    }
    if (o->virtio_console) {
        hvc_virtio_console_options c = HVC_VIRTIO_CONSOLE_OPTIONS_INIT;
        c.mmio = next_slot(n);
        c.output_fd = STDOUT_FILENO;
        c.input_fd = console_in;
        if (hvc_virtio_console_create(vm, &c, NULL) < 0)
            fail("--virtio-console");
        describe(&acpi[n], &c.mmio);
        n++;
    }
    return n;
}
