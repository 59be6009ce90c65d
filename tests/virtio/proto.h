/* What the virtio test guests (tests/virtio/) and their host side
 * (tests/test_virtio_guest.c, bench/virtio_blk.c) agree on: where the
 * devices sit, the command the host leaves at DATA_IN, the results the guest
 * leaves at DATA_OUT, and the data pattern both compute. Included by
 * freestanding guests and hosted C alike, so it uses only <stdint.h>. */
#ifndef VT_PROTO_H
#define VT_PROTO_H

#include <stdint.h>

/* The windows hvrun uses too (virtio.h: 0x200 bytes each). */
#define VT_BLK_BASE 0xd0000000u
#define VT_BLK_IRQ 5
#define VT_RNG_BASE 0xd0000200u
#define VT_RNG_IRQ 6
#define VT_CONS_BASE 0xd0000400u
#define VT_CONS_IRQ 7

/* Guest memory plan (4 MiB of RAM at 0; code at 0x8000, DATA_IN 0x20000,
 * DATA_OUT 0x30000, page tables at 0x100000 as tests/hvtest.h sets up). */
#define VT_DATA_IN 0x20000u
#define VT_DATA_OUT 0x30000u
#define VT_IDT 0x40000u
#define VT_QUEUES 0x200000u /* VT_QUEUE_AREA bytes per virtqueue */
#define VT_QUEUE_AREA 0x4000u
#define VT_BUF 0x280000u /* per-request buffers, VT_STRIDE each */
#define VT_STRIDE 0x4400u
#define VT_HDR 16u      /* a request's header sits at its buffer's start, */
#define VT_DATA 16u     /* its data right after, its status byte after that */
#define VT_MAX_SECT 32u /* data sectors per request */
#define VT_MAX_OPS 48u
#define VT_RAM_END 0x400000u /* the tests give the guests 4 MiB */

#define VT_MAGIC 0x74765476u /* "vTvt" */

/* Request types of the blk script: VIRTIO_BLK_T_* (virtio 1.2 5.2.6),
 * plus pseudo-requests the guest acts out itself. */
enum {
    VT_T_IN = 0,
    VT_T_OUT = 1,
    VT_T_FLUSH = 4,
    VT_T_GET_ID = 8,
    VT_T_DISCARD = 11,
    VT_T_WRITE_ZEROES = 13,
    /* descriptors the device must refuse (virtio.h: DEVICE_NEEDS_RESET) */
    VT_T_BAD_ADDR = 0x100, /* data buffer outside RAM */
    VT_T_BAD_CROSS,        /* data buffer running past the end of RAM */
    VT_T_BAD_LOOP,         /* a chain whose last descriptor points back */
    VT_T_BAD_NEXT,         /* next index beyond the queue size */
    VT_T_REINIT,           /* reset the device and set it up again */
    VT_T_STAGE,            /* stop for the host: OUT to port 0x99 */
    VT_T_PEEK,             /* record Status, QueueReady(0), InterruptStatus */
    VT_T_BAD_NOTIFY,       /* notify queues that do not exist */
};

/* Flags of vt_op::flags. */
enum {
    VT_OP_BATCH = 1u << 0,     /* submit with the next op, one notify */
    VT_OP_MERGE = 1u << 1,     /* OUT: header+data in one descriptor; IN:
                                  data+status in one */
    VT_OP_HDR_SPLIT = 1u << 2, /* the 16-byte header in two descriptors */
    VT_OP_UNMAP = 1u << 3,     /* DISCARD/WRITE_ZEROES segment flag */
    VT_OP_BAD_FLAG = 1u << 4,  /* ... and an unknown segment flag (bit 1) */
};

/* One request of the blk script. */
struct vt_op {
    uint32_t type;
    uint32_t nsect; /* data sectors; for GET_ID the buffer bytes */
    uint64_t sector;
    uint32_t seed;  /* OUT writes vt_pattern(seed); IN checks it if non-0 */
    uint16_t ndata; /* data descriptors, 1..4 */
    uint16_t flags;
};

/* Flags of vt_cmd::flags. */
enum {
    VT_IRQ = 1u << 0,          /* wait for the interrupt instead of polling */
    VT_RX_EARLY = 1u << 1,     /* console: post receive buffers before the
                                  stage stop, not after it */
    VT_RAW_FEATURES = 1u << 2, /* accept vt_cmd::features as they are,
                                  offered or not */
};

/* The command at DATA_IN. */
struct vt_cmd {
    uint32_t magic;
    uint32_t flags;
    uint64_t base;     /* the device's window */
    uint32_t irq;      /* its GSI (PIC line) */
    uint32_t nops;     /* blk: entries in ops; rng: requests; console: the
                          input bytes to wait for */
    uint64_t features; /* features to accept if offered, besides VERSION_1 */
    uint64_t count;    /* bench: requests */
    uint32_t qd;       /* bench: queue depth */
    uint32_t write;    /* bench: 1 for writes */
    uint64_t seed;     /* bench: random offsets */
    struct vt_op ops[VT_MAX_OPS];
};

/* Per-request results. */
struct vt_res {
    uint8_t status; /* as the device wrote it; 0xff when untouched */
    uint8_t done;   /* 1 when its used element came back */
    uint16_t reserved;
    uint32_t used_len;
    uint32_t mismatches; /* IN with a seed: bytes unlike the pattern */
    uint32_t csum;       /* vt_fnv() of the data read */
    uint32_t peek[4];    /* VT_T_BAD_* and VT_T_PEEK: Status,
                            InterruptStatus, QueueReady(0), QueueNumMax(1) */
};

/* Guest errors (vt_out::error and the PORT_DONE byte). */
enum {
    VT_OK = 0,
    VT_E_MAGIC = 1,    /* no virtio-mmio magic at the window */
    VT_E_VERSION,      /* not version 2 */
    VT_E_DEVICE,       /* another device id */
    VT_E_NO_V1,        /* VIRTIO_F_VERSION_1 not offered */
    VT_E_FEATURES_OK,  /* the device cleared FEATURES_OK */
    VT_E_QUEUE,        /* QueueNumMax 0, or a queue already ready */
    VT_E_QUEUE_READY,  /* QueueReady does not read back 1 */
    VT_E_TIMEOUT,      /* no used element within the spin bound */
    VT_E_CMD,          /* a bad command at DATA_IN */
    VT_E_RESET,        /* Status does not read 0 after a reset */
    VT_E_NEEDS_RESET,  /* no DEVICE_NEEDS_RESET after a bad descriptor */
    VT_E_USED_ID,      /* a used element names no pending request */
    VT_E_FAULT = 0xef, /* an unexpected exception or interrupt */
};

/* The results at DATA_OUT. */
struct vt_out {
    uint32_t magic;
    uint32_t error;  /* VT_E_* */
    uint32_t detail; /* e.g. the op index that failed */
    uint32_t version;
    uint32_t device_id;
    uint32_t vendor_id;
    uint64_t dev_features;
    uint64_t drv_features;
    uint32_t queue_max;
    uint32_t status; /* the Status register at the end */
    uint32_t irq_count;
    uint32_t irq_status; /* InterruptStatus bits the handler saw, or'ed */
    uint32_t isr_after;  /* InterruptStatus at the end */
    uint32_t config_gen;
    uint8_t config[64];
    uint64_t tsc_start, tsc_end; /* bench: around the requests */
    uint32_t rx_len;             /* console: bytes received */
    uint32_t rx_count;           /* console: used receive buffers */
    struct vt_res res[VT_MAX_OPS];
};

/* rng: request i's buffer is VT_BUF + i * VT_STRIDE, VT_RNG_LEN bytes. */
#define VT_RNG_LEN 256u
/* console: what the guest transmits, and where it puts what it received
 * (DATA_OUT + VT_CONS_RX, up to VT_CONS_RX_MAX bytes). */
#define VT_CONS_HELLO "Hello from virtio-console!\n"
#define VT_CONS_RX 0x800u
#define VT_CONS_RX_MAX 0x400u
#define VT_CONS_RXBUF 32u /* bytes per receive buffer */
#define VT_CONS_NRX 8u    /* receive buffers kept posted */

/* Byte @i of sector @sector of the data written with @seed: distinct for
 * every sector, offset and seed, so a misplaced sector is caught. */
static inline uint8_t vt_pattern(uint32_t seed, uint64_t sector, uint32_t i)
{
    uint64_t x = sector * 0x9e3779b97f4a7c15ull ^ (uint64_t)seed << 40 ^
                 (uint64_t)(i / 8) << 8;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 32;
    return (uint8_t)(x >> (i % 8 * 8));
}

/* xorshift64: the bench's random offsets, the same sequence in the guest
 * and in the host's baseline. */
static inline uint64_t vt_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* 32-bit FNV-1a, continued from @h (start with VT_FNV_INIT). */
#define VT_FNV_INIT 0x811c9dc5u
static inline uint32_t vt_fnv(uint32_t h, const volatile uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x01000193u;
    return h;
}

#endif
