/* Post-copy live migration, library-internal (docs/MIGRATION.md,
 * "Post-copy"): the plan section both sides share, the source's push loop
 * (postcopy_send.c) and the destination's fault and receiver threads
 * (postcopy_recv.c). The page-presence calls other parts of the library
 * use are declared in src/core/internal.h. */
#ifndef HVCORE_MIGRATION_POSTCOPY_H
#define HVCORE_MIGRATION_POSTCOPY_H

#include "stream.h"

struct hvi_tls;

/* Messages from the destination to the source during post-copy, on the
 * same connection: u16 kind, u16 0, u32 a, u64 b, u32 c, u32 CRC32C of
 * the first 20 bytes. */
#define HVI_PC_MSG_SIZE 24
enum {
    HVI_PC_REQUEST = 1, /* b: guest-physical address of a missing page */
    HVI_PC_DONE = 2,    /* every page arrived; a: median fault service
                         * time (us), c: 99th percentile, b: faults */
    HVI_PC_FAILED = 3   /* a: the destination's negative errno, b: pages
                         * it never received */
};
/* Post-copy MEMORY runs are at most this many pages, so a request waits
 * behind little. */
#define HVI_PC_RUN_PAGES 16u
/* The first 8 bytes the source writes after the acknowledgement, outside
 * the stream's offsets: HVI_PC_CHANNEL with a socket of a new pair passed
 * along (SCM_RIGHTS) when the connection is a unix socket, the page
 * channel; HVI_PC_NO_CHANNEL otherwise. */
#define HVI_PC_CHANNEL "HVCPCCH1"
#define HVI_PC_NO_CHANNEL "HVCPCCH0"
/* (1.2) The page channel is a connection of its own to the receiver's
 * address, whose hello names the session and index HVI_PAR_PAGE_CHANNEL. */
#define HVI_PC_CHANNEL_CONNECTED "HVCPCCH2"
/* Stream offsets on the page channel start here (its own nonces). */
#define HVI_PC_CHANNEL_OFFSET (1ull << 62)

/* The plan: per region, the pages that the source has not sent at the
 * switchover (the POSTCOPY section's bitmap). */
struct hvi_pc_plan {
    size_t n;
    struct hvi_pc_plan_region {
        uint64_t gpa, pages;
        uint64_t *bits; /* (pages + 63) / 64 words, bit set: not sent */
    } * r;
    uint64_t total; /* pages in all bitmaps */
};
/* Writes the POSTCOPY section from the source's pending bitmaps. */
int hvi_pc_put_plan(struct hvi_out *o, hvc_memory_region *const *regs, size_t n,
                    uint64_t *const *pending, uint64_t *total);
/* Reads a POSTCOPY section (restore.c) against the VM's regions. */
int hvi_pc_read_plan(struct hvi_in *in, const struct hvi_sec *s, hvc_vm *vm,
                     struct hvi_pc_plan **out);
void hvi_pc_plan_free(struct hvi_pc_plan *p);

/* The source, after the destination acknowledged a post-copy switchover:
 * pushes every pending page (clearing the bitmaps as it goes), serving
 * the destination's requests first, then writes POSTCOPY_DONE and waits
 * for the destination's DONE. Fills the post-copy fields of *st. */
struct hvi_pc_source {
    hvc_vm *vm;
    int fd;
    struct hvi_out *o;
    hvc_memory_region *const *regs;
    size_t n;
    uint64_t *const *pending;
    hvc_migrate_stats *st;
    /* Over TCP: the receiver's address, where the page channel connects
     * (par_conn.c), with the session id of PARALLEL; NULL: no channel
     * connection. */
    const char *address;
    const uint8_t *session;
    /* The connection's TLS session (NULL: plain), and the options the
     * page channel's own session is opened with. */
    struct hvi_tls *tls;
    const hvc_migrate_tls *tls_opts;
};
int hvi_pc_send(struct hvi_pc_source *src);
/* Test knob (postcopy_send.c): microseconds the push pauses after each
 * pushed run, serving requests meanwhile; 0 (the default) in the library. */
extern unsigned hvi_pc_test_push_pause_us;
/* Tests only (white-box suites linking the static library): the source
 * sleeps this many microseconds before each post-copy run it sends,
 * pushed or asked for, as over a slow link; 0 (the default): never. */
extern _Atomic uint32_t hvi_pc_test_delay_us;

/* The destination: after the stream up to END was read and checked, the
 * plan's pages are given back and guest memory registered with
 * userfaultfd (hvi_pc_prepare); once the acknowledgement went out, the
 * threads start (hvi_pc_start). @p in is the stream reader (its key and
 * offset go on); the state takes it over, and a dup() of @p fd. On error
 * of hvi_pc_prepare the VM is as restored (the caller destroys it). */
int hvi_pc_prepare(hvc_vm *vm, int fd, struct hvi_in *in,
                   struct hvi_pc_plan *plan);
/* Over TLS: hands the connection's session (which the acknowledgement
 * still goes through) and the receiver's options, for the page channel's
 * own session, to the prepared state, which frees the session. */
void hvi_pc_set_tls(hvc_vm *vm, struct hvi_tls *tls,
                    const hvc_migrate_tls *opts);
int hvi_pc_start(hvc_vm *vm);

#endif
