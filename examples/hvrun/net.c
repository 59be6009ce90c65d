/* hvrun's virtio-net devices: --net tap=NAME[,mac=MAC][,queues=N]
 * [,dma=GPA+LEN], each on an existing tap interface, in the virtio slots
 * after the disks. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fmt has one %s: the (escaped) value. */
static void usage_error(const char *fmt, const char *value)
    __attribute__((format(printf, 1, 0)));
static void usage_error(const char *fmt, const char *value)
{
    fprintf(stderr, "hvrun: --net: ");
    fprintf(stderr, fmt, hvrun_esc(value));
    fprintf(stderr, " (try --help)\n");
    exit(HVRUN_EXIT_USAGE);
}

static uint64_t num(const char *what, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        usage_error(what, s);
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || v < lo || v > hi)
        usage_error(what, s);
    return v;
}

static void parse_mac(const char *s, uint8_t mac[6])
{
    unsigned b[6];
    char tail;
    if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1],
                                  &b[2], &b[3], &b[4], &b[5], &tail) != 6)
        usage_error("mac='%s' is not six hex bytes with colons", s);
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)b[i];
    if (mac[0] & 1)
        usage_error("mac='%s' is a multicast address", s);
    static const uint8_t zero[6];
    if (memcmp(mac, zero, 6) == 0)
        usage_error("mac='%s' is all zero", s);
}

void hvrun_parse_net(struct options *o, char *arg)
{
    if (o->nr_nets == HVRUN_MAX_NETS)
        usage_error("at most 4 network devices ('%s' is one more)", arg);
    struct net_opt n = {0};
    n.queues = 1;
    const char *whole = strdup(arg);
    bool mac = false, queues = false, dma = false;
    for (char *save = NULL, *kv = strtok_r(arg, ",", &save); kv;
         kv = strtok_r(NULL, ",", &save)) {
        if (strncmp(kv, "tap=", 4) == 0 && !n.tap) {
            n.tap = kv + 4;
            if (!*n.tap || strlen(n.tap) > 15 || strchr(n.tap, '/'))
                usage_error("tap= needs an interface name of 1..15 bytes "
                            "without '/', not '%s'",
                            n.tap);
        } else if (strncmp(kv, "mac=", 4) == 0 && !mac) {
            parse_mac(kv + 4, n.mac);
            mac = true;
        } else if (strncmp(kv, "queues=", 7) == 0 && !queues) {
            n.queues = (uint32_t)num("queues='%s' is not 1", kv + 7, 1, 1);
            queues = true;
        } else if (strncmp(kv, "dma=", 4) == 0 && !dma) {
            char *plus = strchr(kv + 4, '+');
            if (!plus)
                usage_error("'%s' is not dma=GPA+LEN", kv);
            *plus = 0;
            n.dma_gpa =
                num("dma= address '%s' is not a number", kv + 4, 0, UINT64_MAX);
            n.dma_len =
                num("dma= length '%s' is not a number in range", plus + 1, 1,
                    UINT64_MAX - n.dma_gpa + 1 ? UINT64_MAX - n.dma_gpa + 1
                                               : UINT64_MAX);
            dma = true;
        } else {
            usage_error(
                "'%s' is not tap=NAME[,mac=MAC][,queues=N][,dma=GPA+LEN]",
                whole ? whole : kv);
        }
    }
    if (!n.tap)
        usage_error("'%s' needs tap=NAME", whole ? whole : "");
    free((char *)whole);
    o->nets[o->nr_nets++] = n;
}

static void fail(const char *what)
{
    fprintf(stderr, "hvrun: %s: %s\n", what, hvrun_esc(hvc_last_error()));
    exit(HVRUN_EXIT_USAGE);
}

size_t hvrun_add_nets(hvc_vm *vm, const struct options *o, size_t first,
                      hvc_acpi_device *acpi)
{
    size_t n = 0;
    for (uint32_t i = 0; i < o->nr_nets; i++, n++) {
        const struct net_opt *c = &o->nets[i];
        hvc_virtio_net_options v = HVC_VIRTIO_NET_OPTIONS_INIT;
        v.mmio = (hvc_virtio_mmio){0xd0000000ull +
                                       (first + n) * HVC_VIRTIO_MMIO_SIZE,
                                   (uint32_t)(5 + first + n), 0};
        v.tap = c->tap;
        v.queues = c->queues;
        memcpy(v.mac, c->mac, 6);
        hvc_device *dev;
        if (hvc_virtio_net_create(vm, &v, &dev) < 0)
            fail("--net");
        hvc_memory_grant g = {c->dma_gpa, c->dma_len};
        if (g.length && hvc_device_set_grants(dev, &g, 1) < 0)
            fail("--net dma=");
        memset(&acpi[n], 0, sizeof(acpi[n]));
        acpi[n].hid = "LNRO0005";
        acpi[n].space = HVC_IO_MMIO;
        acpi[n].irq = v.mmio.irq;
        acpi[n].base = v.mmio.base;
        acpi[n].length = HVC_VIRTIO_MMIO_SIZE;
    }
    return n;
}
