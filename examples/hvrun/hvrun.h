/* hvrun: boot a kernel with libhvcore. Shared between the option parser
 * (options.c) and the VM runner (hvrun.c). */
#ifndef HVRUN_H
#define HVRUN_H

#include <hvcore.h>

#include <stdbool.h>
#include <stdint.h>

/* Exit statuses other than the guest's own debug-exit value. */
#define HVRUN_EXIT_USAGE 2
#define HVRUN_EXIT_TRIPLE_FAULT 124
#define HVRUN_EXIT_INTERNAL 125
#define HVRUN_EXIT_INTERRUPTED 130

enum serial_mode { SERIAL_STDIO, SERIAL_FILE, SERIAL_NONE };

#define HVRUN_MAX_DISKS 8

struct options {
    const char *kernel;
    const char *initrd;
    const char *cmdline;
    uint64_t mem_mib;
    uint32_t cpus;
    enum serial_mode serial;
    const char *serial_path;
    bool raw;
    uint64_t raw_address;
    uint32_t raw_mode;
    int32_t numa_node; /* -1: no placement */
    bool list_host;
    bool json;
    const char *disks[HVRUN_MAX_DISKS];
    bool disk_readonly[HVRUN_MAX_DISKS];
    uint32_t nr_disks;
    bool rng;
    bool virtio_console;
    bool virtio_cmdline; /* announce virtio on the command line, not ACPI */
};

/* Parses argv; on a usage error prints one line and exits 2; --help and
 * --version print and exit 0. */
void hvrun_parse(int argc, char **argv, struct options *o);

/* Adds the virtio devices the options ask for (virtio.c), each a window
 * from 0xd0000000 with its own GSI from 5 up, and describes them in
 * acpi[] (up to 16 entries); console_fd_in/out give the virtio console's
 * stdio. Returns the number of ACPI entries written. */
size_t hvrun_add_virtio(hv_vm *vm, const struct options *o, int console_in,
                        hv_acpi_device *acpi);

/* Reads a whole file; on failure prints one line and exits 2. */
void *hvrun_read_file(const char *what, const char *path, uint64_t *size);

/* host.c: --list-host prints the host's NUMA nodes and PCI devices as a
 * table or as JSON, and returns the exit status. */
int hvrun_list_host(bool json);
/* Exits 2 with one line unless the host has node @node with CPUs. */
void hvrun_check_numa_node(uint32_t node);

#endif
