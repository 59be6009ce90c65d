/* Helpers of the virtio-net suites (test_virtio_net.c,
 * test_virtio_net_state.c): a network namespace per test with a tap and
 * the host's address on it, the guest of tests/virtio/vnet.c running on a
 * thread of its own, host sockets for ARP, ICMP and numbered UDP. */
#ifndef VNET_UTIL_H
#define VNET_UTIL_H

#include "hvtest.h"
#include "virtio/vnet_proto.h"
#include "virtio/vthost.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <hvcore/virtio.h>

#define TAP "vnt0"
#define HOST_IP "10.99.0.1"
#define GUEST_IP "10.99.0.2"
#define HOST_PORT 5000
#define GUEST_PORT 5001
#define NEEDS_RESET 0x40u /* device Status */

extern const uint8_t guest_mac[6];

typedef struct vnt {
    vt v;
    hvc_device *net;
    struct vn_cmd cmd;
    pthread_t th;
    int running;
    atomic_int quit; /* the runner returns at its next kick */
    int done;        /* PORT_DONE's byte, or -1 */
    char why[160];   /* an unexpected exit */
} vnt;

/* The one guest of a test (the suite's fini stops and closes it). */
extern vnt g;

struct udp_count {
    uint32_t n, gaps, last, max;
};

void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The suite's init and fini: ip netns add, setns, the tap up with
 * HOST_IP; and the guest stopped, the VM closed, ip netns del. */
void netns_up(void);
void netns_down(void);
void vnt_fini(void);
/* Runs the guest's vCPU on a thread until PORT_DONE (start), or stops it
 * with a kick (halt_vcpu). */
void start(vnt *n);
void halt_vcpu(vnt *n);
/* The guest's live counters. */
void out(vnt *n, struct vn_out *o);
/* Tells the guest to stop, waits for it, asserts it ended well. */
struct vn_out finish(vnt *n);
uint64_t tsc_hz(void);
/* The device on TAP with guest_mac at VN_BASE, named "net0". */
void add_net(vnt *n, uint32_t flags);
/* A VM with the guest and the device, the command written. */
void open_guest(vnt *n, uint32_t mode, uint64_t features, uint32_t udp_count,
                uint32_t interval_us, uint32_t pings);
/* A UDP socket on HOST_IP:HOST_PORT (non-blocking). */
int udp_rx_sock(void);
void udp_drain(int s, struct udp_count *c);
void udp_send(int s, uint32_t seq);
/* A datagram of @len bytes (4..1472): the sequence number, then a pattern
 * (the guest checks the UDP checksum over all of it). */
void udp_send_len(int s, uint32_t seq, size_t len);
uint16_t csum(const void *p, size_t n);
/* Echo requests from the host; returns the replies that came back. */
int host_ping(int count, int timeout_ms);
void stats(vnt *n, hvc_virtio_net_stats *s);

/* Waits (up to @ms) until the guest's counters satisfy @cond. */
#define WAIT_GUEST(n, o, ms, cond)                                             \
    do {                                                                       \
        for (int w_ = 0; w_ < (ms); w_ += 20) {                                \
            out((n), &(o));                                                    \
            if (cond)                                                          \
                break;                                                         \
            usleep(20000);                                                     \
        }                                                                      \
        out((n), &(o));                                                        \
    } while (0)

#endif
