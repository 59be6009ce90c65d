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
};

/* Parses argv; on a usage error prints one line and exits 2; --help and
 * --version print and exit 0. */
void hvrun_parse(int argc, char **argv, struct options *o);

/* Reads a whole file; on failure prints one line and exits 2. */
void *hvrun_read_file(const char *what, const char *path, uint64_t *size);

/* host.c: --list-host prints the host's NUMA nodes and PCI devices as a
 * table or as JSON, and returns the exit status. */
int hvrun_list_host(bool json);
/* Exits 2 with one line unless the host has node @node with CPUs. */
void hvrun_check_numa_node(uint32_t node);

#endif
