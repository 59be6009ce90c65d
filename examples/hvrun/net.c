/* hvrun's virtio-net devices: --net tap=NAME[,mac=MAC][,queues=N]
 * [,dma=GPA+LEN], each on an existing tap interface, in the virtio slots
 * after the disks.
 *
 * A live migration's destination (--incoming) on the same host finds the
 * tap still held by the source, which lets it go only when it exits after
 * the switchover: the device is then created detached (the guest's
 * packets are held), and a thread attaches it as soon as the tap is free,
 * which also announces the guest. A hand-over's destination gets the tap's
 * descriptor itself from the old hvrun instead, and restoring the device
 * announces the guest. */
#define _GNU_SOURCE
#include "hvrun.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Devices created detached, and the thread attaching them. */
static struct {
    hvc_device *dev;
    const char *tap;
} pending[HVRUN_MAX_NETS];
static uint32_t nr_pending;
static pthread_t attacher;
static bool attacher_started;
static atomic_bool attacher_stop;

#define ATTACH_WAIT_S 30

static void *attach_later(void *arg)
{
    (void)arg;
    struct timespec tick = {0, 10 * 1000 * 1000};
    uint32_t left = nr_pending;
    for (int t = 0;
         left && !atomic_load(&attacher_stop) && t < ATTACH_WAIT_S * 100; t++) {
        for (uint32_t i = 0; i < nr_pending; i++) {
            if (!pending[i].dev)
                continue;
            int r = hvc_virtio_net_attach_backend(pending[i].dev, NULL, -1);
            if (r == -EBUSY)
                continue;
            if (r < 0)
                fprintf(stderr, "hvrun: --net tap=%s: %s\n",
                        hvrun_esc(pending[i].tap), hvrun_esc(hvc_last_error()));
            pending[i].dev = NULL;
            left--;
        }
        nanosleep(&tick, NULL);
    }
    for (uint32_t i = 0; i < nr_pending; i++)
        if (pending[i].dev && !atomic_load(&attacher_stop))
            fprintf(stderr,
                    "hvrun: --net tap=%s: still busy after %d s; the "
                    "device stays detached\n",
                    hvrun_esc(pending[i].tap), ATTACH_WAIT_S);
    return NULL;
}

void hvrun_nets_attach_later(void)
{
    if (nr_pending && pthread_create(&attacher, NULL, attach_later, NULL) == 0)
        attacher_started = true;
}

void hvrun_nets_stop(void)
{
    atomic_store(&attacher_stop, true);
    if (attacher_started)
        pthread_join(attacher, NULL);
    attacher_started = false;
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
        /* A hand-over passed the very tap the old hvrun had open (its
         * devices are named in the same order: virtio-net0, ...). */
        char name[32];
        snprintf(name, sizeof(name), "virtio-net%u", i);
        int passed = hvrun_handover_fd(vm, name, 0);
        if (passed >= 0) {
            v.tap = NULL;
            v.fd = passed;
        }
        v.queues = c->queues;
        memcpy(v.mac, c->mac, 6);
        hvc_device *dev;
        int r = hvc_virtio_net_create(vm, &v, &dev);
        if (r == -EBUSY && o->incoming) {
            v.flags |= HVC_VIRTIO_NET_DETACHED;
            r = hvc_virtio_net_create(vm, &v, &dev);
            if (r == 0) {
                pending[nr_pending].dev = dev;
                pending[nr_pending++].tap = c->tap;
            }
        }
        if (r < 0)
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
