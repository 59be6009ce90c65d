/* Parallel connections of a live migration, library-internal (docs/
 * MIGRATION.md, "Parallel connections"): the extra connections a sender
 * opens to the receiver's address, each authenticated by the session id
 * the main connection carries (par_conn.c); guest memory striped across
 * them by worker threads as round-tagged records (par_send.c); and the
 * receiver's threads that place those records from any connection in any
 * order, never over a newer round (par_recv.c). Post-copy's page channel
 * over TCP is one more such connection. */
#ifndef HVCORE_MIGRATION_PAR_H
#define HVCORE_MIGRATION_PAR_H

#include "stream.h"
#include "transport.h"

#include <stdbool.h>
#include <stdint.h>

/* The live acknowledgement: magic, i32 status (0 or the destination's
 * negative errno), u32 CRC32C of the first 12 bytes. */
#define HVI_ACK_MAGIC "HVCMACK1"
#define HVI_ACK_SIZE 16

/* Format 1.2 sections (ids 12-15). */
enum {
    HVI_PARALLEL = 12,     /* main: extra connections and the session id */
    HVI_MEMORY_ROUND = 13, /* any memory connection: a round-tagged run */
    HVI_CONN_END = 14,     /* an extra connection's last section */
    HVI_PARALLEL_END = 15  /* main: every connection's totals */
};

/* Connections at most, the main one included. */
#define HVI_PAR_MAX 16u
/* Pages in one round-tagged record at most. */
#define HVI_PAR_RUN_PAGES 512u
/* Payload of PARALLEL: u32 extra connections, u32 flags, 16-byte id. */
#define HVI_PAR_SECTION 24u
#define HVI_PAR_F_PAGE_CHANNEL 1u /* post-copy's channel may connect */
/* The descriptor of a MEMORY_ROUND record: u64 gpa, u64 pages, u32
 * encoding, u32 round. */
#define HVI_ROUND_DESC 24u
/* Totals of one connection (CONN_END, and each entry of PARALLEL_END):
 * u64 records, u64 raw pages, u64 zero pages, u64 payload bytes, u32
 * last round, u32 0. */
#define HVI_CONN_TOTALS 40u
/* Stream offsets (so encryption nonces) of extra connection k start at
 * k << 52; the main connection stays below, post-copy's page channel is
 * at 2^62. */
#define HVI_PAR_OFFSET(k) ((uint64_t)(k) << 52)
/* The hello's index of post-copy's page channel. */
#define HVI_PAR_PAGE_CHANNEL 0x100u
/* Hello: magic, u32 index, u32 0, 16-byte session id, u32 0, u32 CRC32C
 * of the first 36 bytes. Answer: magic, i32 status, u32 CRC32C of the
 * first 12 bytes. */
#define HVI_HELLO_MAGIC "HVCMCON1"
#define HVI_HELLO_SIZE 40u
#define HVI_HELLO_ACK_MAGIC "HVCMCAC1"
#define HVI_HELLO_ACK_SIZE 16u
/* How long a receiver waits for the extra connections, and one accepted
 * connection for its hello. */
#define HVI_PAR_ACCEPT_MS 10000u
#define HVI_PAR_HELLO_MS 2000u

struct hvi_conn_totals {
    uint64_t records, raw_pages, zero_pages, bytes;
    uint32_t last_round;
};
void hvi_totals_encode(uint8_t p[HVI_CONN_TOTALS],
                       const struct hvi_conn_totals *t);
void hvi_totals_decode(const uint8_t p[HVI_CONN_TOTALS],
                       struct hvi_conn_totals *t);

/* par_conn.c. Sender: connects to @addr, handshakes TLS when @t, says
 * hello as connection @index of @session and waits (at most @timeout_ms)
 * for the receiver's answer. The socket is left blocking. */
int hvi_par_connect(const char *addr, const hvc_migrate_tls *t, uint32_t index,
                    const uint8_t session[16], uint32_t timeout_ms, int *fd,
                    struct hvi_tls **tls);
/* Receiver: accepts on @listen_fd until a connection says hello with
 * @session and an index in [@lo, @hi] not in *@taken (a bit per index
 * below 32; NULL for none), at most @timeout_ms. Any other connection (a
 * stranger, a repeated index, no hello in time, a failed TLS handshake)
 * is answered with a refusal, closed, logged with why, and waited past.
 * *index receives the connection's index. */
int hvi_par_accept(int listen_fd, const hvc_migrate_tls *t,
                   const uint8_t session[16], uint32_t lo, uint32_t hi,
                   uint32_t *taken, uint32_t timeout_ms, int *fd,
                   struct hvi_tls **tls, uint32_t *index);
/* The main connection, watched while waiting (the source says nothing on
 * it meanwhile: data or its end means it gave up); -1: none. Set before
 * hvi_par_accept() on this thread. */
void hvi_par_accept_watch(int main_fd);
/* Writes or reads exactly @len bytes on a blocking socket or session;
 * 0, or a negative errno (-ECONNABORTED at the peer's end). */
int hvi_conn_write_all(int fd, struct hvi_tls *tls, const void *buf,
                       size_t len);
int hvi_conn_read_all(int fd, struct hvi_tls *tls, void *buf, size_t len);

/* par_send.c: the sender's side. */
struct hvi_par;
struct hvi_par_cfg {
    hvc_vm *vm;
    const hvc_migrate_options *opts; /* address, TLS, key, bandwidth */
    struct hvi_out *main;            /* the main connection's writer */
    int main_fd;                     /* and its socket */
    uint32_t connections;            /* the main one included, 1-16 */
    bool page_channel;               /* post-copy's may connect */
    _Atomic int *cancel;             /* the VM's migrate_cancel */
    uint64_t deadline;               /* ns, CLOCK_MONOTONIC; 0: none */
};
/* Writes PARALLEL on the main connection, opens the extra connections
 * and starts one worker thread per extra connection. */
int hvi_par_open(const struct hvi_par_cfg *cfg, struct hvi_par **out);
/* The session id (for post-copy's page channel). */
const uint8_t *hvi_par_session(const struct hvi_par *p);
/* Queues @count pages of region @reg from page @pg for the round. */
int hvi_par_add(struct hvi_par *p, const hvc_memory_region *reg, uint64_t pg,
                uint64_t count);
/* Sends what was queued as round @round, over every connection (the
 * calling thread writes the main one); returns once all of it is out. */
int hvi_par_run(struct hvi_par *p, uint32_t round);
/* Ends every extra connection (CONN_END) and writes PARALLEL_END on the
 * main one: after the last round, before POSTCOPY or the vCPUs. */
int hvi_par_finish(struct hvi_par *p);
/* Bytes the extra connections carried so far (between rounds). */
uint64_t hvi_par_sent(const struct hvi_par *p);
/* Statistics per connection into @st. */
void hvi_par_stats(const struct hvi_par *p, hvc_migrate_stats *st);
/* Stops the workers and closes the extra connections. */
void hvi_par_free(struct hvi_par *p);

/* par_recv.c: the receiver's side, from restore.c's section loop. */
int hvi_par_in_begin(struct hvi_in *in, const struct hvi_sec *s, hvc_vm *vm);
int hvi_par_in_record(struct hvi_in *in, const struct hvi_sec *s);
int hvi_par_in_end(struct hvi_in *in, const struct hvi_sec *s);
/* Stops the receiving threads (before the VM is destroyed); when one of
 * them failed first, its error replaces @err's message and is returned. */
int hvi_par_in_stop(struct hvi_in *in, int err);
void hvi_par_in_free(struct hvi_in *in);

#endif
