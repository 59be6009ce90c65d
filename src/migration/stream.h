/* Migration streams, library-internal: the format's constants
 * (docs/MIGRATION.md), the sequential writer and the hostile-input reader
 * that save.c and restore.c build on. */
#ifndef HVCORE_MIGRATION_STREAM_H
#define HVCORE_MIGRATION_STREAM_H

#include "../core/internal.h"

#include <hvcore/migration.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Section ids, in stream order (PAD may come anywhere). */
enum {
    HVI_CONFIG = 1,
    HVI_MEMORY = 2,
    HVI_VCPU = 3,
    HVI_IRQCHIP = 4,
    HVI_TSC = 5,
    HVI_DEVICE = 6,
    HVI_PAD = 7,
    HVI_USER = 8,
    HVI_FDS = 9, /* format 1.1: a hand-over's descriptors */
    HVI_POSTCOPY = 10,      /* the pages left for post-copy (postcopy.h) */
    HVI_POSTCOPY_DONE = 11, /* after the post-copy pages */
    HVI_END = 0xffff
};

#define HVI_MAGIC "HVCORESN"
#define HVI_HEADER_SIZE 80
#define HVI_SEC_HEADER 24
#define HVI_MEM_DESC 24 /* u64 gpa, u64 pages, u32 encoding, u32 data CRC */
#define HVI_TAG_SIZE 16 /* AES-GCM tag, appended to an encrypted payload */
#define HVI_PAGE 4096u

#define HVI_F_REQUIRED 1u
#define HVI_F_ENCRYPTED 2u

#define HVI_HDR_ENCRYPTED 1u  /* header flags */
#define HVI_HDR_PASSPHRASE 2u /* the key comes from a passphrase */
#define HVI_HDR_MEMFD 4u      /* a hand-over: memory travels by descriptor */

#define HVI_MEM_RAW 0u
#define HVI_MEM_ZERO 1u

/* Bounds a reader applies before allocating. */
#define HVI_MAX_SECTION (16u << 20)
#define HVI_MAX_RUN_PAGES (1u << 18) /* 1 GiB of raw pages */
/* Writers cut raw runs at this many pages (encrypted: at the smaller
 * bound, since a sealed run is buffered whole). */
#define HVI_RUN_PAGES 4096u
#define HVI_SEALED_RUN_PAGES 256u

/* Section versions this library writes and reads. */
#define HVI_VERSION 1u

/* Tags of the CONFIG record. */
enum {
    HVI_CFG_VM_FLAGS = 1,
    HVI_CFG_MAX_VCPUS = 2,
    HVI_CFG_VCPU_IDS = 3,  /* bytes: u32 ids */
    HVI_CFG_REGIONS = 4,   /* bytes: {u64 gpa, u64 length, u32 flags, 0} */
    HVI_CFG_FPU_SIZE = 5,  /* XSAVE blob bytes */
    HVI_CFG_PHYS_BITS = 6, /* highest guest-physical address bit used */
    HVI_CFG_TSC_KHZ = 7,
    HVI_CFG_TSC_PINNED = 8,
    HVI_CFG_NR_DEVICES = 9
};

/* A VCPU or IRQCHIP record tags each state blob with its hvc_backend_state
 * kind (the architectural layouts of src/arch/x86/arch_state.h); format 1's
 * XSAVE tag 200 is never written (kind 13 carries XSAVE). */

struct hvi_crypt;

/* crypt.c: AES-256-GCM through OpenSSL. The key is derived from the
 * caller's key (HKDF-SHA256) or passphrase (PBKDF2-HMAC-SHA256) and the
 * stream's salt, so no two streams share a key even when the caller's key
 * is reused, and the section offset makes a unique nonce. */
int hvi_crypt_new(const uint8_t *key, const char *passphrase,
                  const uint8_t salt[16], struct hvi_crypt **out);
void hvi_crypt_free(struct hvi_crypt *c);
/* The same key with a context of its own, for a second thread. */
int hvi_crypt_clone(const struct hvi_crypt *c, struct hvi_crypt **out);
int hvi_random(void *buf, size_t len);
/* Seals @p len bytes at @p in into @p out (len + HVI_TAG_SIZE bytes). */
int hvi_seal(struct hvi_crypt *c, uint64_t offset, const uint8_t aad[20],
             const void *in, size_t len, uint8_t *out);
/* Opens @p len bytes (tag included) in place; -EKEYREJECTED on a bad tag.
 */
int hvi_unseal(struct hvi_crypt *c, uint64_t offset, const uint8_t aad[20],
               uint8_t *buf, size_t len);

/* out.c: the writer. */
struct hvi_out {
    hvc_stream s;
    int fd; /* >= 0: write(2) to it instead of s */
    uint64_t off;
    uint64_t total; /* estimate for progress */
    uint64_t next_report;
    hvc_progress_fn progress;
    void *opaque;
    bool align;
    uint32_t extra_hflags; /* header flags a hand-over adds */
    struct hvi_crypt *crypt;
    uint8_t *scratch; /* sealed payloads */
    size_t scratch_cap;
    /* Totals for the END section. */
    uint64_t sections, raw_pages, zero_pages, payload_bytes;
};
int hvi_out_write(struct hvi_out *o, const void *buf, size_t len);
/* One section whose payload is in memory. */
int hvi_put_section(struct hvi_out *o, uint16_t id, uint32_t instance,
                    const void *payload, size_t len);
/* One MEMORY run: @p pages pages at @p gpa, raw from @p data (whose
 * CRC32C is @p data_crc) or zero (@p data NULL). */
int hvi_put_memory(struct hvi_out *o, uint64_t gpa, uint64_t pages,
                   const uint8_t *data, uint32_t data_crc);
/* save_memory.c: every region's pages as MEMORY runs. */
int hvi_save_memory(struct hvi_out *o, hvc_vm *vm);
int hvi_put_end(struct hvi_out *o);
/* save.c: the whole stream of a paused VM. */
int hvi_save(hvc_vm *vm, struct hvi_out *o, const hvc_save_options *opts);
/* The parts of hvi_save() a live migration runs apart: the header,
 * CONFIG and USER (@p live: the VM may be running), then, with the VM
 * paused and memory sent, the vCPUs, IRQCHIP, TSC, devices and END. */
int hvi_save_begin(hvc_vm *vm, struct hvi_out *o, const hvc_save_options *opts,
                   bool live);
int hvi_save_finish(hvc_vm *vm, struct hvi_out *o);
/* hvc_vm_migrate_send(), or with @p to_file a live snapshot into the file
 * @p fd: no acknowledgement is awaited, and the VM resumes at the end
 * (live.c). */
int hvi_live_send(hvc_vm *vm, int fd, const hvc_migrate_options *opts,
                  hvc_migrate_stats *stats, bool to_file);
int hvi_out_progress(struct hvi_out *o, bool final);
void hvi_out_free(struct hvi_out *o);

/* in.c: the reader. */
struct hvi_sec {
    uint16_t id;
    uint16_t flags;
    uint32_t version;
    uint64_t length; /* stored payload bytes */
    uint32_t instance;
    uint32_t crc;
    uint64_t offset; /* stream offset of the section header */
    uint8_t raw[HVI_SEC_HEADER];
};
struct hvi_in {
    hvc_stream s;
    int fd;
    uint64_t off;
    uint64_t total;
    uint64_t next_report;
    hvc_progress_fn progress;
    void *opaque;
    struct hvi_crypt *crypt;
    uint32_t header_flags;
    char backend[9]; /* the writer's backend, information only */
    bool can_map; /* fd is a regular file: MEMORY runs may be mapped */
    struct hvi_handover *ho; /* a hand-over's descriptors, or NULL */
    bool verify_mapped;
    bool live;                /* a live migration: POSTCOPY may come */
    struct hvi_pc_plan *plan; /* the POSTCOPY section read, or NULL */
};
const char *hvi_section_name(uint16_t id);
/* Records "stream section NAME (instance N) at byte OFF: ..." and returns
 * err; @p s NULL for the stream header. */
int hvi_fail(const struct hvi_sec *s, int err, const char *fmt, ...)
    HVI_PRINTF(3, 4);
int hvi_read_header(struct hvi_in *in, const char *backend, const uint8_t *key,
                    const char *passphrase);
/* Reads exactly @p len bytes; -ENODATA (with a message) at a short end. */
int hvi_in_read(struct hvi_in *in, const struct hvi_sec *s, void *buf,
                size_t len);
int hvi_next_section(struct hvi_in *in, struct hvi_sec *s);
/* Reads a whole (bounded) payload, checks its CRC, decrypts it; *out is
 * malloc'd, *len the plaintext length. */
int hvi_read_payload(struct hvi_in *in, const struct hvi_sec *s, uint8_t **out,
                     size_t *len);
/* Reads and checks a payload it does not keep (PAD, unknown sections). */
int hvi_skip_payload(struct hvi_in *in, const struct hvi_sec *s);
int hvi_in_progress(struct hvi_in *in);
/* snapshot.c: hvc_vm_restore_fd() with @p in prepared by the caller
 * (live.c); when the stream had a POSTCOPY section, in->plan and
 * in->crypt are left to the caller, also on failure. */
int hvi_restore_in(hvc_hypervisor *hv, struct hvi_in *in,
                   const hvc_restore_options *opts, hvc_vm **out);
/* restore.c: the whole stream into a new VM (@p mapped: memory runs are
 * mapped from in->fd when they can be). */
int hvi_restore(hvc_hypervisor *hv, struct hvi_in *in,
                const hvc_restore_options *opts, bool mapped, hvc_vm **out);
/* The same into one of @p n existing VMs (reuse.c), for the fuzzer. */
int hvi_restore_reuse(hvc_hypervisor *hv, struct hvi_in *in,
                      const hvc_restore_options *opts, hvc_vm *const *vms,
                      size_t n, hvc_vm **out);

/* memory_in.c: one MEMORY section into the new VM. */
struct hvi_mem_state;
int hvi_mem_state_new(hvc_vm *vm, bool mapped, struct hvi_mem_state **out);
void hvi_mem_state_free(struct hvi_mem_state *m);
int hvi_read_memory(struct hvi_in *in, const struct hvi_sec *s,
                    struct hvi_mem_state *m, uint64_t *raw, uint64_t *zero);

/* config.c */
int hvi_config_encode(hvc_vm *vm, uint8_t **out, size_t *len);
struct hvi_config {
    uint32_t vm_flags;
    uint32_t max_vcpus;
    uint32_t nr_vcpus;
    uint32_t *vcpu_ids;
    uint32_t nr_regions;
    struct hvi_region {
        uint64_t gpa, len;
        uint32_t flags;
    } * regions;
    uint64_t fpu_size;
    uint64_t phys_bits;
    uint64_t tsc_khz;
    uint64_t tsc_pinned;
    uint64_t nr_devices;
    bool no_regions; /* a hand-over: the FDS section brings the regions */
};
int hvi_config_decode(const struct hvi_sec *s, const uint8_t *p, size_t len,
                      struct hvi_config *c);
void hvi_config_free(struct hvi_config *c);
/* Whether this host can give the VM the configuration describes (address
 * bits, memory); hvi_config_apply's first step, and a reused VM's. */
int hvi_config_check(hvc_hypervisor *hv, const struct hvi_sec *s,
                     const struct hvi_config *c);
/* Creates the VM, its regions (mapped: anonymous, for MAP_FIXED file
 * pieces) and vCPUs as the configuration says (hvi_config_check first). */
int hvi_config_apply(hvc_hypervisor *hv, const struct hvi_sec *s,
                     const struct hvi_config *c, int32_t kick_signal,
                     bool mapped, hvc_vm **out);
/* reuse.c: hvc_vm_restore() into the VM of @p vms whose configuration the
 * stream's CONFIG describes (the setup callback must be NULL: the devices
 * are the VM's). After an error *out is the VM it picked, which may be
 * half-loaded, or NULL. */
int hvi_vm_restore_reuse(hvc_hypervisor *hv, const hvc_stream *stream,
                         const hvc_restore_options *opts, hvc_vm *const *vms,
                         size_t n, hvc_vm **out);
/* handover_recv.c: hvc_vm_handover_receive() into the VM of @p vms whose
 * configuration the stream's CONFIG describes and that has no memory
 * regions (the FDS section maps them), for the hand-over fuzzer: no
 * setup callback (the devices are the VM's), and after an error *out is
 * the VM it picked, possibly half-loaded, or NULL. The caller removes the
 * regions and resets the devices before offering the VM again. */
int hvi_vm_handover_receive_reuse(hvc_hypervisor *hv, int sockfd,
                                  hvc_vm *const *vms, size_t n, hvc_vm **out);
/* reuse.c: the VM of @p vms whose own CONFIG equals @p c (for a hand-over,
 * @p c's regions aside, and the VM must have none); -ENODEV when there is
 * none. */
int hvi_config_pick(const struct hvi_sec *s, const struct hvi_config *c,
                    hvc_vm *const *vms, size_t n, hvc_vm **out);

/* handover_fds.c: the descriptors a hand-over brought, and its FDS
 * section (docs/MIGRATION.md, "Hand-over"). fds[i] is -1 once a region
 * or the caller took it. */
struct hvi_handover {
    int *fds;
    uint32_t nr_fds;
    uint32_t nr_regions;
    struct hvi_ho_dev {
        char name[48];
        uint32_t slot;
    } * devs; /* device descriptor j is fds[nr_regions + j] */
    uint32_t nr_devs;
    bool seen;         /* the FDS section was applied */
    uint64_t map_ns;   /* spent checking and mapping the descriptors */
    int sockfd;        /* where the ready message goes */
    hvc_vm *vm;        /* the VM being built, once the regions are mapped */
    uint64_t ready_ns; /* when it went */
    uint64_t state_ns; /* when the first state section after it came */
};
/* The receiver is ready (its memory mapped, its devices attached): tells
 * the sender, which pauses the guest only now. */
int hvi_ho_ready(struct hvi_handover *ho);
/* Notes when the paused guest's state starts to arrive (the first call
 * counts). */
void hvi_ho_state_arrived(struct hvi_handover *ho);
/* Writes a ready or confirmation message (@p magic) on @p fd. */
int hvi_ho_send_msg(int fd, const char *magic, int status, uint64_t map_us,
                    uint64_t load_us);
/* The packet that carries the descriptors: magic, u32 count, u32 CRC32C
 * of the first 12 bytes. The confirmation: magic, i32 status, u32 map
 * and load microseconds, u32 CRC32C of the first 20 bytes. */
#define HVI_HO_PACKET 16
#define HVI_HO_ACK_MAGIC "HVCHACK1"
#define HVI_HO_READY_MAGIC "HVCHRDY1" /* the same layout, status 0 */
/* A refusal's reason follows it, this many bytes at most. */
#define HVI_HO_REASON_MAX 400u
#define HVI_HO_ACK 24
/* Sender: the FDS payload for @p regs and the device descriptors in
 * @p fds[nr_regions..nr_fds) with their names and slots. */
int hvi_ho_encode(hvc_memory_region *const *regs, const uint64_t *offsets,
                  size_t nr_regions, const struct hvi_ho_dev *devs,
                  size_t nr_devs, uint8_t **out, size_t *len);
/* handover_caller.c: the file a caller-supplied region maps shared, opened
 * (*fd is the caller's to close), and the region's offset in it; -ENOTSUP
 * (saying why) for any other mapping. */
int hvi_ho_caller_file(const hvc_memory_region *g, int *fd, uint64_t *offset);
/* Receiver: checks the FDS section against the configuration and the
 * descriptors, maps the regions into @p vm and keeps the device
 * descriptors for hvc_vm_handover_fd(). */
int hvi_ho_apply(struct hvi_handover *ho, const struct hvi_sec *s,
                 const uint8_t *p, size_t len, const struct hvi_config *c,
                 hvc_vm *vm);
void hvi_ho_close(struct hvi_handover *ho);

/* cpu_state.c: VCPU and IRQCHIP sections. */
int hvi_vcpu_encode(hvc_vcpu *v, uint8_t **out, size_t *len);
int hvi_vcpu_apply(const struct hvi_sec *s, hvc_vcpu *v, const uint8_t *p,
                   size_t len);
/* *len 0 (and *out NULL) when the VM has no interrupt controller. */
int hvi_irqchip_encode(hvc_vm *vm, uint8_t **out, size_t *len);
int hvi_irqchip_apply(const struct hvi_sec *s, hvc_vm *vm, const uint8_t *p,
                      size_t len);

/* Whether a page is all zero; a non-zero page is told by its first
 * non-zero cache line, without reading the rest. */
static inline bool hvi_page_zero(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    if (w)
        return false;
    for (size_t i = 0; i < HVI_PAGE; i += 64) {
        uint64_t acc = 0;
        for (size_t k = 0; k < 64; k += 8) {
            memcpy(&w, p + i + k, 8);
            acc |= w;
        }
        if (acc)
            return false;
    }
    return true;
}

/* Little-endian field access. */
static inline void hvi_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void hvi_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void hvi_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t hvi_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t hvi_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static inline uint64_t hvi_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#endif
