/* The virtio-net benchmark's guest (bench/virtio_net.c): a PVH ELF that
 * both hvrun and QEMU's microvm boot, so that the two VMMs run the same
 * guest. Its 32-bit PVH entry maps the first 4 GiB with 2 MiB pages and
 * enters long mode; then it finds the virtio-net device by scanning the
 * virtio-mmio windows the command line names ("scan=BASE,COUNT"), and
 * serves the host over UDP port 6001 (tests/virtio/vdrv.h's driver,
 * polling):
 *   'B'          a datagram of the receive blast: counted;
 *   'Q'          answered with the count of 'B' datagrams (then reset);
 *   'T' n size   n datagrams of size bytes sent to the host's port 6000 as
 *                fast as the transmit ring allows;
 *   'X'          exit (port 0xf4).
 * Addresses: the guest 10.98.0.2, the host 10.98.0.1. */
#include "../../tests/virtio/vdrv.h"

#define HDR 12u
#define ETH 14u
#define NRX 64u
#define NTX 64u
#define BUFSZ 2048u
#define RXBUF 0x400000u
#define TXBUF 0x480000u
#define QUEUES 0x500000u

struct hvm_start_info {
    uint32_t magic, version, flags, nr_modules;
    uint64_t modlist_paddr, cmdline_paddr;
};

uint32_t start_info_ptr;
void bench_main(void);

/* PVH: 32-bit protected mode, paging off, EBX = start_info. */
__asm__(".pushsection .note.Xen, \"a\", @note\n"
        ".align 4\n"
        ".long 4, 4, 18\n"
        ".asciz \"Xen\"\n"
        ".long pvh_start\n"
        ".popsection\n"
        ".pushsection .text.entry, \"ax\"\n"
        ".code32\n"
        ".globl pvh_start, _start\n"
        "_start:\n"
        "pvh_start:\n"
        "    mov %ebx, start_info_ptr\n"
        "    mov $pml4, %edi\n"
        "    mov $pdpt, %eax\n"
        "    or $3, %eax\n"
        "    mov %eax, (%edi)\n"
        "    mov $pdpt, %edi\n"
        "    mov $pds, %eax\n"
        "    or $3, %eax\n"
        "    mov %eax, (%edi)\n"
        "    add $0x1000, %eax\n"
        "    mov %eax, 8(%edi)\n"
        "    add $0x1000, %eax\n"
        "    mov %eax, 16(%edi)\n"
        "    add $0x1000, %eax\n"
        "    mov %eax, 24(%edi)\n"
        "    mov $pds, %edi\n"
        "    xor %ecx, %ecx\n"
        "1:  mov %ecx, %eax\n"
        "    shl $21, %eax\n"
        "    or $0x83, %eax\n"
        "    mov %eax, (%edi,%ecx,8)\n"
        "    mov %ecx, %edx\n"
        "    shr $11, %edx\n"
        "    mov %edx, 4(%edi,%ecx,8)\n"
        "    inc %ecx\n"
        "    cmp $2048, %ecx\n"
        "    jne 1b\n"
        "    mov %cr4, %eax\n"
        "    or $0x20, %eax\n"
        "    mov %eax, %cr4\n"
        "    mov $pml4, %eax\n"
        "    mov %eax, %cr3\n"
        "    mov $0xc0000080, %ecx\n"
        "    rdmsr\n"
        "    or $0x100, %eax\n"
        "    wrmsr\n"
        "    mov %cr0, %eax\n"
        "    or $0x80000001, %eax\n"
        "    mov %eax, %cr0\n"
        "    lgdt gdtr\n"
        "    ljmp $0x08, $long_entry\n"
        ".code64\n"
        "long_entry:\n"
        "    mov $0x10, %ax\n"
        "    mov %ax, %ds\n"
        "    mov %ax, %es\n"
        "    mov %ax, %ss\n"
        "    mov $stack_top, %rsp\n"
        "    call bench_main\n"
        "2:  hlt\n"
        "    jmp 2b\n"
        ".align 8\n"
        "gdt:\n"
        "    .quad 0, 0x00af9a000000ffff, 0x00cf92000000ffff\n"
        "gdtr:\n"
        "    .word 23\n"
        "    .long gdt\n"
        ".popsection\n");

static uint8_t pml4[4096] __attribute__((used, aligned(4096)));
static uint8_t pdpt[4096] __attribute__((used, aligned(4096)));
static uint8_t pds[4 * 4096] __attribute__((used, aligned(4096)));
static uint8_t stack[16384] __attribute__((used, aligned(16)));
__asm__(".set stack_top, stack + 16384");

static struct vd_dev dev;
static struct vd_queue rxq, txq;
static uint8_t mac[6], host_mac[6];
static int host_known;
static uint16_t tx_free[NTX];
static uint32_t nr_tx_free;
static uint32_t blast_count;
static const uint8_t my_ip[4] = {10, 98, 0, 2}, host_ip[4] = {10, 98, 0, 1};

static uint16_t be16(const volatile uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(volatile uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint64_t hex(const char **s)
{
    uint64_t v = 0;
    if ((*s)[0] == '0' && ((*s)[1] == 'x' || (*s)[1] == 'X'))
        *s += 2;
    for (;; (*s)++) {
        char c = **s;
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return v;
        v = v * 16 + (uint64_t)d;
    }
}

static void reclaim(void)
{
    uint32_t id, len;
    while (vd_get_used(&txq, &id, &len))
        if (id < NTX)
            tx_free[nr_tx_free++] = (uint16_t)id;
}

static volatile uint8_t *tx_get(uint16_t *slot)
{
    while (!nr_tx_free)
        reclaim();
    *slot = tx_free[--nr_tx_free];
    volatile uint8_t *b = (volatile uint8_t *)(uint64_t)(TXBUF + *slot * BUFSZ);
    for (uint32_t i = 0; i < HDR; i++)
        b[i] = 0;
    return b + HDR;
}

static void tx_send(uint16_t slot, uint32_t len, int notify)
{
    struct vd_buf b = {TXBUF + slot * BUFSZ, HDR + len, 0};
    vd_add_chain(&txq, slot, &b, 1);
    vd_publish(&txq);
    if (notify)
        vd_notify(&dev, &txq);
}

static void eth(volatile uint8_t *f, const uint8_t *dst, uint16_t type)
{
    for (int i = 0; i < 6; i++) {
        f[i] = dst[i];
        f[6 + i] = mac[i];
    }
    put16(f + 12, type);
}

static void arp(uint16_t op, const uint8_t *dst, const volatile uint8_t *tpa)
{
    uint16_t s;
    volatile uint8_t *f = tx_get(&s);
    static const uint8_t bc[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    eth(f, op == 1 ? bc : dst, 0x0806);
    volatile uint8_t *a = f + ETH;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    for (int i = 0; i < 6; i++) {
        a[8 + i] = mac[i];
        a[18 + i] = op == 1 ? 0 : dst[i];
    }
    for (int i = 0; i < 4; i++) {
        a[14 + i] = my_ip[i];
        a[24 + i] = tpa[i];
    }
    tx_send(s, 60, 1);
}

/* A UDP datagram to the host's port 6000 (no UDP checksum: 0 is allowed
 * over IPv4); the IPv4 header's checksum is computed. */
static void udp(const uint8_t *payload, uint32_t plen, uint32_t size,
                int notify)
{
    uint16_t s;
    volatile uint8_t *f = tx_get(&s);
    eth(f, host_mac, 0x0800);
    volatile uint8_t *ip = f + ETH, *u = ip + 20;
    uint32_t ulen = 8 + size;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (uint16_t)(20 + ulen));
    put16(ip + 4, 0);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    put16(ip + 10, 0);
    for (int i = 0; i < 4; i++) {
        ip[12 + i] = my_ip[i];
        ip[16 + i] = host_ip[i];
    }
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2)
        sum += be16(ip + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    put16(ip + 10, (uint16_t)~sum);
    put16(u, 6001);
    put16(u + 2, 6000);
    put16(u + 4, (uint16_t)ulen);
    put16(u + 6, 0);
    for (uint32_t i = 0; i < plen && i < size; i++)
        u[8 + i] = payload[i];
    tx_send(s, ETH + 20 + ulen, notify);
}

static int on_frame(const volatile uint8_t *f, uint32_t len)
{
    if (len < ETH + 28)
        return 0;
    uint16_t type = be16(f + 12);
    if (type == 0x0806) {
        const volatile uint8_t *a = f + ETH;
        if (be16(a + 6) == 1 && a[24] == my_ip[0] && a[25] == my_ip[1] &&
            a[26] == my_ip[2] && a[27] == my_ip[3]) {
            uint8_t sha[6];
            for (int i = 0; i < 6; i++)
                sha[i] = a[8 + i];
            arp(2, sha, a + 14);
        } else if (be16(a + 6) == 2) {
            for (int i = 0; i < 6; i++)
                host_mac[i] = a[8 + i];
            host_known = 1;
        }
        return 0;
    }
    const volatile uint8_t *ip = f + ETH, *u = ip + 20;
    if (type != 0x0800 || ip[9] != 17 || be16(u + 2) != 6001 ||
        len < ETH + 20 + 9)
        return 0;
    const volatile uint8_t *p = u + 8;
    if (p[0] == 'B') {
        blast_count++;
    } else if (p[0] == 'Q') {
        uint8_t r[5] = {'R', (uint8_t)(blast_count >> 24),
                        (uint8_t)(blast_count >> 16),
                        (uint8_t)(blast_count >> 8), (uint8_t)blast_count};
        blast_count = 0;
        udp(r, 5, 5, 1);
    } else if (p[0] == 'T' && len >= ETH + 20 + 8 + 7) {
        uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 8 | p[4];
        uint32_t size = be16(p + 5);
        if (size < 8 || size > 1472)
            size = 8;
        for (uint32_t i = 1; i <= n; i++) {
            uint8_t seq[5] = {'S', (uint8_t)(i >> 24), (uint8_t)(i >> 16),
                              (uint8_t)(i >> 8), (uint8_t)i};
            /* notify once per 8: the device drains in batches */
            udp(seq, 5, size, (i & 7) == 0 || i == n);
        }
    } else if (p[0] == 'X') {
        return 1;
    }
    return 0;
}

void bench_main(void)
{
    const struct hvm_start_info *si =
        (const struct hvm_start_info *)(uint64_t)start_info_ptr;
    const char *c = (const char *)si->cmdline_paddr;
    uint64_t base = 0xd0000000u, count = 1;
    for (; c && *c; c++)
        if (c[0] == 's' && c[1] == 'c' && c[2] == 'a' && c[3] == 'n' &&
            c[4] == '=') {
            c += 5;
            base = hex(&c);
            if (*c == ',') {
                c++;
                count = hex(&c);
            }
            break;
        }
    int found = 0;
    for (uint64_t i = 0; i < count && !found; i++)
        found = vd_probe(&dev, base + i * 0x200, 1) == 0;
    if (!found || vd_init(&dev, (1ull << 5) | (1ull << 15) | (1ull << 16)) ||
        vd_queue_setup(&dev, &rxq, 0, QUEUES, NRX) ||
        vd_queue_setup(&dev, &txq, 1, QUEUES + 0x4000, NTX)) {
        vd_outb(0xf4, 1);
        return;
    }
    vd_driver_ok(&dev);
    for (int i = 0; i < 6; i++)
        mac[i] = vd_config8(&dev, (uint32_t)i);
    for (uint32_t i = NTX; i-- > 0;)
        tx_free[nr_tx_free++] = (uint16_t)i;
    for (uint16_t i = 0; i < NRX; i++) {
        struct vd_buf b = {RXBUF + i * BUFSZ, BUFSZ, 1};
        vd_add_chain(&rxq, i, &b, 1);
    }
    vd_publish(&rxq);
    vd_notify(&dev, &rxq);
    uint64_t next_arp = 0;
    for (;;) {
        uint32_t id, len, n = 0;
        while (vd_get_used(&rxq, &id, &len)) {
            int quit = 0;
            if (id < NRX && len > HDR)
                quit = on_frame(
                    (volatile uint8_t *)(uint64_t)(RXBUF + id * BUFSZ) + HDR,
                    len - HDR);
            struct vd_buf b = {RXBUF + id * BUFSZ, BUFSZ, 1};
            vd_add_chain(&rxq, (uint16_t)id, &b, 1);
            n++;
            if (quit) {
                vd_outb(0xf4, 0);
                return;
            }
        }
        if (n) {
            vd_publish(&rxq);
            vd_notify(&dev, &rxq);
        }
        reclaim();
        if (!host_known && vd_rdtsc() > next_arp) {
            arp(1, 0, host_ip);
            next_arp = vd_rdtsc() + (1ull << 28);
        }
    }
}
