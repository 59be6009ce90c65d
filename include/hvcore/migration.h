/**
 * @file hvcore/migration.h
 * @brief Migration streams: save a paused VM, restore it in another process.
 *
 * A stream (docs/MIGRATION.md) holds everything a VM is: its configuration,
 * guest memory, every vCPU's full state, the interrupt controllers and PIT,
 * the TSC state record and each device's state record. It is written
 * strictly in order (never seeking), so it can go to a file, a pipe or a
 * socket, and it is read as hostile input: a damaged, truncated or forged
 * stream is refused with a message that names the section and the byte
 * offset, and nothing of it reaches a VM the caller can see.
 *
 * A snapshot file is a stream whose guest memory sits at page-aligned file
 * offsets, written under a temporary name and renamed over the target only
 * when complete; a restore can then map the memory copy-on-write instead of
 * reading it.
 *
 * Sections may be encrypted and authenticated with AES-256-GCM (OpenSSL)
 * under a 32-byte key the caller gives, or one derived from a passphrase
 * (PBKDF2-HMAC-SHA256, 600000 iterations, random salt).
 *
 * Thread rules: a save runs on the caller's thread while the VM is paused
 * (hvc_vm_pause()); vCPU threads may stay parked inside hvc_vcpu_run(). A
 * restore creates a new VM and touches nothing else.
 */
#ifndef HVCORE_MIGRATION_H
#define HVCORE_MIGRATION_H

#include "common.h"
#include "hypervisor.h"
#include "vm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Format major version this library writes; a reader refuses another. */
#define HVC_STREAM_FORMAT_MAJOR 2
/** Format minor version this library writes and reads up to. */
#define HVC_STREAM_FORMAT_MINOR 0

/** Size of a caller-supplied encryption key, bytes (AES-256). */
#define HVC_STREAM_KEY_SIZE 32

/** Most bytes of caller data a stream carries (hvc_save_options::user_data).
 */
#define HVC_STREAM_USER_DATA_MAX (1u << 20)

/**
 * Where a stream goes to or comes from, when it is not a file descriptor.
 * Initialise with ::HVC_STREAM_INIT. The library calls @c write (saving) or
 * @c read (restoring) on the caller's thread, in order, and never seeks.
 */
typedef struct hvc_stream {
    /** sizeof(hvc_stream) as the caller was compiled. */
    uint32_t size;
    /** Reserved; 0. */
    uint32_t reserved;
    /**
     * Writes up to @p length bytes; returns how many were written (at least
     * 1; the library calls again for the rest) or a negative errno.
     */
    int64_t (*write)(void *opaque, const void *buf, size_t length);
    /**
     * Reads up to @p length bytes; returns how many were read (0 at the end
     * of the stream) or a negative errno.
     */
    int64_t (*read)(void *opaque, void *buf, size_t length);
    /** Passed to @c write and @c read. */
    void *opaque;
} hvc_stream;

/** Initialiser for ::hvc_stream (set the callbacks and opaque after). */
#define HVC_STREAM_INIT                                                        \
    {                                                                          \
        sizeof(hvc_stream), 0, NULL, NULL, NULL                                \
    }

/**
 * Progress of a save or a restore: @p done bytes of the stream so far, of
 * about @p total (0 when unknown, as for a restore from a pipe). Called
 * on the saving or restoring thread, at most every 4 MiB and once at the
 * end; return 0 to go on, or a negative errno to stop the operation with
 * that error.
 */
typedef int (*hvc_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/** Flags of hvc_save_options::flags. */
typedef enum hvc_save_flags {
    /**
     * Place every run of raw guest pages at a stream offset that is a
     * multiple of the page size (padding sections in between), so that a
     * restore can map a file copy-on-write. hvc_snapshot_save() always sets
     * it.
     */
    HVC_SAVE_ALIGN_PAGES = 1u << 0
} hvc_save_flags;

/**
 * Save options. Initialise with ::HVC_SAVE_OPTIONS_INIT; fields are only
 * ever appended, and the library reads only those that @c size covers.
 */
typedef struct hvc_save_options {
    /** sizeof(hvc_save_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_save_flags. */
    uint32_t flags;
    /**
     * ::HVC_STREAM_KEY_SIZE bytes: encrypt every section with a key derived
     * from this one and a random per-stream salt. NULL: no key.
     */
    const uint8_t *key;
    /**
     * NUL-terminated passphrase: encrypt with a key derived from it
     * (PBKDF2). At most one of @c key and @c passphrase.
     */
    const char *passphrase;
    /**
     * Caller bytes stored in the stream (at most ::HVC_STREAM_USER_DATA_MAX)
     * and handed back on restore (hvc_restore_options::setup): a VMM keeps
     * its own configuration here, such as the disk paths it attached.
     */
    const void *user_data;
    /** Bytes at @c user_data. */
    size_t user_data_length;
    /** Called as the stream grows; NULL for none. */
    hvc_progress_fn progress;
    /** Passed to @c progress. */
    void *opaque;
} hvc_save_options;

/** Initialiser for ::hvc_save_options. */
#define HVC_SAVE_OPTIONS_INIT                                                  \
    {                                                                          \
        sizeof(hvc_save_options), 0, NULL, NULL, NULL, 0, NULL, NULL           \
    }

/** Flags of hvc_restore_options::flags. */
typedef enum hvc_restore_flags {
    /**
     * hvc_snapshot_restore(): map guest memory from the file MAP_PRIVATE
     * (lazy, copy-on-write) instead of reading it. The file must then stay
     * unchanged while the VM lives (the library keeps it open). Every
     * section's CRC is still checked, except that of the mapped page data,
     * which is checked only with ::HVC_RESTORE_VERIFY_MEMORY (that reads
     * all of it). Ignored for an encrypted snapshot, which is always read.
     * Ignored too when a region of the snapshot has ::HVC_MEMORY_HUGETLB:
     * a copy-on-write mapping of a file is page-cache memory and cannot be
     * backed by huge pages, so the restore reads guest memory into
     * hugetlb-backed regions instead (and says so at ::HVC_LOG_WARN
     * through the log hook) rather than dropping the flag.
     */
    HVC_RESTORE_MMAP = 1u << 0,
    /** With ::HVC_RESTORE_MMAP: check the CRC of the mapped pages too. */
    HVC_RESTORE_VERIFY_MEMORY = 1u << 1
} hvc_restore_flags;

/**
 * Called once during a restore, after the VM, its memory regions and its
 * vCPUs exist and before any device state is loaded: attach the VM's
 * devices here (with the same names as on the source), using the caller
 * data the stream carried. The VM is not yet the caller's: on any later
 * error the library destroys it. Return 0, or a negative errno to stop
 * the restore (a message from hvc_last_error() is kept).
 */
typedef int (*hvc_restore_setup_fn)(void *opaque, hvc_vm *vm,
                                    const void *user_data, size_t length);

/**
 * Restore options. Initialise with ::HVC_RESTORE_OPTIONS_INIT; fields are
 * only ever appended, and the library reads only those that @c size covers.
 */
typedef struct hvc_restore_options {
    /** sizeof(hvc_restore_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_restore_flags. */
    uint32_t flags;
    /** The key the stream was saved with (::HVC_STREAM_KEY_SIZE bytes). */
    const uint8_t *key;
    /** The passphrase the stream was saved with. */
    const char *passphrase;
    /** Attaches the devices; NULL when the VM has none with state. */
    hvc_restore_setup_fn setup;
    /** Called as the stream is read; NULL for none. */
    hvc_progress_fn progress;
    /** Passed to @c setup and @c progress. */
    void *opaque;
    /** Kick signal for the new VM (hvc_vm_options::kick_signal); 0: SIGRTMIN.
     */
    int32_t kick_signal;
    /** Reserved; 0. */
    uint32_t reserved;
    /** hvc_vm_migrate_receive(): TLS over the connection (the sender must
     * use it too); NULL for none. Ignored by the other calls. */
    const struct hvc_migrate_tls *tls;
    /**
     * hvc_vm_migrate_receive(): the listening socket the connection was
     * accepted from (hvc_migrate_listen()), on which the sender's extra
     * connections arrive: its parallel memory connections
     * (hvc_migrate_options::connections) and, over TCP, post-copy's page
     * channel. Each must name the migration's session (sent on the main
     * connection); any other connection accepted meanwhile is refused and
     * closed. The library accepts on it only during the call (and, for
     * post-copy, until the page channel came) and never closes it. -1
     * (the initialiser): none; a stream that needs extra connections is
     * then refused (-ENOTSUP) and the sender runs on. Ignored by the
     * other calls.
     */
    int32_t listen_fd;
    /** hvc_vm_migrate_receive(): the longest wait, in ms, for the next
     * bytes of the stream while the connection stays open. A sender that
     * stalls longer fails the receive with -ETIMEDOUT (no guest is
     * started); during post-copy the stalled link counts as failed, as a
     * cut one does. 0: ::HVC_RESTORE_TIMEOUT_DEFAULT_MS;
     * ::HVC_RESTORE_NO_TIMEOUT: wait forever. Ignored by the other calls.
     * Appended in 1.0 (a caller compiled before it gets the default). */
    uint32_t timeout_ms;
    /** Reserved; 0. */
    uint32_t reserved2;
} hvc_restore_options;

/** hvc_restore_options::timeout_ms when 0: 30 s. */
#define HVC_RESTORE_TIMEOUT_DEFAULT_MS 30000u
/** hvc_restore_options::timeout_ms: no limit. */
#define HVC_RESTORE_NO_TIMEOUT 0xffffffffu

/** Initialiser for ::hvc_restore_options. */
#define HVC_RESTORE_OPTIONS_INIT                                               \
    {                                                                          \
        sizeof(hvc_restore_options), 0, NULL, NULL, NULL, NULL, NULL, 0, 0,    \
            NULL, -1, 0, 0                                                     \
    }

/**
 * Saves a paused VM to a stream: configuration, memory (zero pages as
 * flags only), every vCPU, the interrupt controllers and PIT, the TSC state
 * record, and the state of every device that has save_state. A vCPU whose
 * last exit left port or MMIO data for the guest gets it first, so the
 * saved registers are those the guest would see next. The VM stays paused
 * and can be resumed afterwards.
 *
 * @param opts options, or NULL for none (no encryption).
 * @return 0; -EINVAL (NULL, bad options, both key and passphrase, user
 *         data too large); -EBUSY when the VM is not paused; -ENOTSUP when
 *         the backend cannot save a VM; the stream's error (for example
 *         -EPIPE, -ENOSPC); a device's or the backend's error.
 */
HVC_EXTERN int hvc_vm_save(hvc_vm *vm, const hvc_stream *stream,
                           const hvc_save_options *opts);

/** hvc_vm_save() to a file descriptor (a pipe, a socket, a file) with
 * write(2); the descriptor is left open where the stream ended. A reader
 * that went away (a destination that refused the stream and exited) is
 * -EPIPE, never a SIGPIPE: the signal is blocked on the calling thread
 * around each write and consumed if the write raised it. */
HVC_EXTERN int hvc_vm_save_fd(hvc_vm *vm, int fd, const hvc_save_options *opts);

/**
 * Saves a paused VM to a snapshot file at @p path atomically: the stream
 * (with ::HVC_SAVE_ALIGN_PAGES) is written to a temporary file in the same
 * directory, fsynced, renamed over @p path, and the directory is fsynced.
 * On any failure the temporary file is removed and a file already at
 * @p path is untouched.
 *
 * @return as hvc_vm_save(); -errno for a file system error (the message
 *         names the path).
 */
HVC_EXTERN int hvc_snapshot_save(hvc_vm *vm, const char *path,
                                 const hvc_save_options *opts);

/**
 * Restores a VM from a stream into a new VM of @p hv. The VM is handed to
 * the caller only when the whole stream, up to its end section, was read
 * and checked; on any error nothing is left behind. The new VM is not
 * paused; its vCPUs (hvc_vm_get_vcpu()) continue where the saved ones
 * stopped at their next hvc_vcpu_run().
 *
 * @param opts options, or NULL (no key, no setup callback).
 * @param out  receives the VM.
 * @return 0; -EINVAL (NULL, bad options); -EBADMSG for a damaged or
 *         impossible stream (the message names the section and offset);
 *         -EPROTO for a stream of another format major, a newer minor or
 *         section version, another architecture or backend; -EKEYREJECTED
 *         when the stream is encrypted and no key was given, or the key is
 *         wrong (the first section fails authentication); -ENODATA when
 *         the stream ends early; -ENOTSUP when this host lacks what the VM
 *         needs (CPU features, XSAVE size, address bits, more RAM than the
 *         host has: the stream's claim, not a shortage of the moment, so
 *         not -ENOMEM; hugetlb pages where the kernel has none or its pool
 *         has too few free); -ENOENT when the stream has state for a
 *         device the setup callback did not attach (or the reverse); the
 *         stream's, the callback's or the backend's error.
 */
HVC_EXTERN int hvc_vm_restore(hvc_hypervisor *hv, const hvc_stream *stream,
                              const hvc_restore_options *opts, hvc_vm **out);

/** hvc_vm_restore() from a file descriptor with read(2). */
HVC_EXTERN int hvc_vm_restore_fd(hvc_hypervisor *hv, int fd,
                                 const hvc_restore_options *opts, hvc_vm **out);

/**
 * Restores a VM from a snapshot file, reading it or (::HVC_RESTORE_MMAP)
 * mapping its memory.
 *
 * @return as hvc_vm_restore(); -errno when the file cannot be opened.
 */
HVC_EXTERN int hvc_snapshot_restore(hvc_hypervisor *hv, const char *path,
                                    const hvc_restore_options *opts,
                                    hvc_vm **out);

/**
 * @name Live migration (pre-copy)
 *
 * hvc_vm_migrate_send() moves a running VM to hvc_vm_migrate_receive() in
 * another process (or host) over any connected descriptor: a socket pair,
 * a unix or TCP socket. The stream is the one of hvc_vm_save() (docs/
 * MIGRATION.md, "Live migration"): memory goes first while the guest runs,
 * then again for the pages it wrote meanwhile, round after round, until
 * what is left would take no longer than the downtime budget at the
 * link's measured throughput; then the VM is paused, the last pages and
 * the vCPU, interrupt controller, TSC and device state are sent, and the
 * destination answers with an acknowledgement once it has read and
 * checked the whole stream.
 *
 * Over TCP the stream can go through TLS (::hvc_migrate_tls), the
 * pre-copy rounds can be held to a bandwidth limit, and auto-converge can
 * throttle a guest that dirties memory faster than the link carries it.
 * hvc_migrate_connect() and hvc_migrate_listen() make the sockets for
 * "unix:PATH" and "tcp:HOST:PORT" addresses.
 *
 *
 * Post-copy (::HVC_MIGRATE_POSTCOPY): the switchover comes before all of
 * memory went over. The source pauses, sends the state sections and the
 * set of pages it has not sent yet, and once the destination acknowledged
 * them, the destination's guest runs at once while the source pushes the
 * rest; a page the destination's guest (or a device) touches before it
 * arrived is asked for and jumps the queue. hvc_vm_postcopy_stats() and
 * hvc_vm_postcopy_wait() follow it on the destination.
 *
 * Guest memory can go over several connections at once
 * (hvc_migrate_options::connections), and post-copy's page channel over a
 * second TCP connection (hvc_migrate_options::address).
 * @{
 */

/** Flags of hvc_migrate_tls::flags. */
typedef enum hvc_migrate_tls_flags {
    /** Receiver: require the sender's certificate, signed by a CA of
     * @c ca (mutual TLS); a sender without one is refused. */
    HVC_MIGRATE_TLS_VERIFY_PEER = 1u << 0
} hvc_migrate_tls_flags;

/**
 * TLS for a migration (OpenSSL's libssl, loaded on first use; TLS 1.2 or
 * newer). The sender is the TLS client and always verifies the
 * receiver's certificate against @c ca; the receiver is the server.
 * Initialise with ::HVC_MIGRATE_TLS_INIT; fields are only ever appended.
 * The files are read during the call that uses them.
 */
typedef struct hvc_migrate_tls {
    /** sizeof(hvc_migrate_tls) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_migrate_tls_flags. */
    uint32_t flags;
    /** PEM certificate (chain) file: the receiver's (required there); the
     * sender's, for a receiver that asks for one. */
    const char *cert;
    /** PEM private key file of @c cert. */
    const char *key;
    /** PEM file of trusted CA certificates: required on the sender; on
     * the receiver with ::HVC_MIGRATE_TLS_VERIFY_PEER. */
    const char *ca;
    /** Sender: the DNS name or IP address the receiver's certificate must
     * name; NULL checks the chain only. */
    const char *server_name;
} hvc_migrate_tls;

/** Initialiser for ::hvc_migrate_tls. */
#define HVC_MIGRATE_TLS_INIT                                                   \
    {                                                                          \
        sizeof(hvc_migrate_tls), 0, NULL, NULL, NULL, NULL                     \
    }

/**
 * Connects to a migration address: "unix:PATH", or "tcp:HOST:PORT" with
 * HOST a name, an IPv4 address or an IPv6 address in brackets ("tcp:
 * [::1]:4444"); TCP sockets get TCP_NODELAY. Blocks until connected.
 *
 * @return the connected socket (close-on-exec; the caller closes it);
 *         -EINVAL for an address that is none of these (the message
 *         quotes it, escaped); -EHOSTUNREACH when the host does not
 *         resolve; connect(2)'s error.
 */
HVC_EXTERN int hvc_migrate_connect(const char *addr);

/**
 * Listens on a migration address (as hvc_migrate_connect(); a TCP port
 * may be 0, getsockname(2) then tells the one chosen). A unix socket
 * left at PATH by an earlier run is removed first (no other file is);
 * the caller unlinks PATH when done. Accept with accept4(2).
 *
 * @return the listening socket (close-on-exec); errors as
 *         hvc_migrate_connect(), with bind(2)'s and listen(2)'s.
 */
HVC_EXTERN int hvc_migrate_listen(const char *addr);

/** Most connections one migration carries memory on
 * (hvc_migrate_options::connections), the main one included. */
#define HVC_MIGRATE_CONNECTIONS_MAX 16

/** Statistics of one hvc_vm_migrate_send(). Fields are only ever
 * appended; the library fills those that @c size covers. */
typedef struct hvc_migrate_stats {
    /** sizeof(hvc_migrate_stats) as the caller was compiled. */
    uint32_t size;
    /** Dirty-tracking mode used (hvc_memory_dirty_mode() bits). */
    uint32_t dirty_mode;
    /** Rounds sent: 1 for the first full pass, plus one per pre-copy
     * round of dirty pages (the final, paused one not counted). */
    uint32_t rounds;
    /** Non-zero once the destination acknowledged the stream. */
    uint32_t completed;
    /** Milliseconds from the call to the first page sent (tracking
     * started, header and configuration written). */
    uint64_t setup_ms;
    /** Milliseconds from the call to its return. */
    uint64_t total_ms;
    /** Microseconds the VM was paused, from the pause to the
     * destination's acknowledgement (the source's clock). */
    uint64_t downtime_us;
    /** Stream bytes and guest pages (raw and zero runs) of the first
     * full pass, of the pre-copy rounds, and of the paused phase. */
    uint64_t bytes_initial, pages_initial;
    uint64_t bytes_precopy, pages_precopy;
    uint64_t bytes_final, pages_final;
    /** Link throughput measured in the last round, bytes per second. */
    uint64_t throughput_bps;
    /** Pages the guest dirtied per second in the last round. */
    uint64_t dirty_pages_per_s;
    /** Pages still to send, as of the last progress report. */
    uint64_t remaining_pages;
    /** Downtime the budget check expected, microseconds. */
    uint64_t expected_downtime_us;
    /** Parts of @c downtime_us: pausing the vCPUs, then writing the last
     * pages and the state, then waiting for the acknowledgement (the
     * destination reading what was still in flight and checking it). */
    uint64_t pause_us, final_send_us, ack_wait_us;
    /** Auto-converge: the share of time the vCPUs were held paused in
     * the last pre-copy round, percent (0: never throttled). */
    uint32_t throttle_percent;
    /** Non-zero when the stream went through TLS. */
    uint32_t tls;
    /** Non-zero when the switchover was a post-copy one. */
    uint32_t postcopy;
    /** Reserved; 0. */
    uint32_t reserved;
    /** Pages not yet sent at the post-copy switchover. */
    uint64_t postcopy_pages;
    /** Of those, pages the source pushed on its own, and pages it sent
     * because the destination asked for them (its faults). */
    uint64_t postcopy_pages_pushed, postcopy_pages_requested;
    /** Stream bytes written after the post-copy switchover. */
    uint64_t postcopy_bytes;
    /** Fault service time as the destination measured it (from the fault
     * to the page in place), median and 99th percentile, microseconds;
     * reported by the destination when post-copy completed. */
    uint64_t postcopy_fault_median_us, postcopy_fault_p99_us;
    /** Pages the destination never received: non-zero only when the link
     * failed during post-copy (then the guest is lost on both sides). */
    uint64_t postcopy_pages_lost;
    /** Milliseconds from the post-copy switchover to the destination's
     * report that every page arrived. */
    uint64_t postcopy_ms;
    /** Connections that carried guest memory, the main one included (1
     * without hvc_migrate_options::connections). */
    uint32_t connections;
    /** Post-copy's page channel: 0 none (the page requests shared the
     * main connection), 1 a socket passed along the unix connection, 2 a
     * connection of its own to hvc_migrate_options::address. */
    uint32_t postcopy_channel;
    /** Per connection (index 0: the main one; up to @c connections):
     * bytes of its memory records (section headers included), and the
     * guest pages they carried, every round. */
    uint64_t connection_bytes[HVC_MIGRATE_CONNECTIONS_MAX];
    uint64_t connection_pages[HVC_MIGRATE_CONNECTIONS_MAX];
} hvc_migrate_stats;

/** Initialiser for ::hvc_migrate_stats. */
#define HVC_MIGRATE_STATS_INIT                                                 \
    {                                                                          \
        sizeof(hvc_migrate_stats), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,      \
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {0},   \
            {0}                                                                \
    }

/**
 * Renders @p stats as one JSON object (no newline) into @p buf: every
 * field that @c stats->size covers, by its name, numbers as integers,
 * "dirty_mode" also as "dirty_tracking" ("bitmap", "ring", "none").
 *
 * @return the length of the whole text (as snprintf(3): when it is
 *         @p len or more, the text was cut short, still NUL-terminated
 *         when @p len > 0); -EINVAL for NULL @p stats or a size below
 *         that of the first release's fields, or NULL @p buf with a
 *         non-zero @p len.
 */
HVC_EXTERN int hvc_migrate_stats_json(const hvc_migrate_stats *stats, char *buf,
                                      size_t len);

/**
 * Called on the sending thread after each round with the statistics so
 * far; return 0 to go on or a negative errno to stop the migration with
 * that error (the source then resumes).
 */
typedef int (*hvc_migrate_progress_fn)(void *opaque,
                                       const hvc_migrate_stats *stats);

/** Flags of hvc_migrate_options::flags. */
typedef enum hvc_migrate_flags {
    /**
     * Auto-converge: when a pre-copy round ends with more dirty pages than
     * the round before it could send (the guest dirties memory faster
     * than the link carries it), the vCPUs are throttled: held paused for
     * 20% of every 20 ms, then 10 points more after each such round, up
     * to 99%. The throttle ends at the switchover or on failure.
     */
    HVC_MIGRATE_AUTO_CONVERGE = 1u << 0,
    /**
     * Allow a post-copy switchover: after
     * hvc_migrate_options::postcopy_after_rounds pre-copy rounds when that
     * is set, and otherwise when pre-copy has not converged within
     * hvc_migrate_options::max_rounds. Once the destination acknowledged
     * the post-copy switchover, the guest's memory lives on both sides
     * until the last page arrived: a link failure then loses the guest
     * (both sides report it), as with any post-copy migration. Over TLS
     * the pages after the switchover stay inside TLS (the page channel
     * over TCP makes a session of its own).
     */
    HVC_MIGRATE_POSTCOPY = 1u << 1,
    /**
     * hvc_snapshot_save_live() only: leave the VM paused once the file is
     * written, as a snapshot of a paused VM would (the guest's last output
     * is then the snapshot's), instead of resuming it. A failed save
     * resumes it all the same.
     */
    HVC_MIGRATE_LEAVE_PAUSED = 1u << 8
} hvc_migrate_flags;

/**
 * Options of hvc_vm_migrate_send(). Initialise with
 * ::HVC_MIGRATE_OPTIONS_INIT; fields are only ever appended.
 */
typedef struct hvc_migrate_options {
    /** sizeof(hvc_migrate_options) as the caller was compiled. */
    uint32_t size;
    /** Bit mask of ::hvc_migrate_flags. */
    uint32_t flags;
    /** Encryption key (::HVC_STREAM_KEY_SIZE bytes), or NULL. */
    const uint8_t *key;
    /** Encryption passphrase, or NULL; at most one of the two. */
    const char *passphrase;
    /** Caller data carried to the restore's setup callback. */
    const void *user_data;
    /** Bytes at @c user_data, at most ::HVC_STREAM_USER_DATA_MAX. */
    size_t user_data_length;
    /** Longest pause wanted, ms; 0: 10. Pre-copy goes on until the
     * remaining pages would take no longer at the measured throughput. */
    uint32_t max_downtime_ms;
    /** Pre-copy rounds at most, then the switchover happens whatever the
     * remaining pages; 0: 30. */
    uint32_t max_rounds;
    /** Fails the migration (the source resumes) when it has not reached
     * the switchover after this many ms; 0: no limit. */
    uint32_t timeout_ms;
    /** Reserved; 0. */
    uint32_t reserved;
    /** Called after each round; NULL for none. */
    hvc_migrate_progress_fn progress;
    /** Passed to @c progress. */
    void *opaque;
    /** TLS over the connection (a stream socket, TCP or unix); NULL for
     * none. The receiver must use TLS too. */
    const hvc_migrate_tls *tls;
    /** Most MiB (2^20 bytes) per second the pre-copy passes write; 0: no
     * limit. The paused final phase is not limited (it is sized to the
     * downtime budget at the limited rate, and limiting it would only
     * lengthen the pause). */
    uint32_t bandwidth_mib;
    /** With ::HVC_MIGRATE_POSTCOPY: switch over to post-copy after this
     * many pre-copy rounds (1: right after the first full pass), whether
     * pre-copy converges or not; 0: only when it does not converge
     * within @c max_rounds. */
    uint32_t postcopy_after_rounds;
    /**
     * Connections that carry guest memory, the main one (@p fd) included,
     * at most ::HVC_MIGRATE_CONNECTIONS_MAX; 0 or 1: the main one only.
     * The others are opened to @c address (each with a TLS session of its
     * own when @c tls is set) and authenticated by a random session id the
     * main connection carries; worker threads, one per extra connection,
     * and the calling thread stripe each round's pages across them. The
     * main connection alone carries the state. Not with
     * hvc_snapshot_save_live(). The receiver needs its listening socket
     * (hvc_restore_options::listen_fd).
     */
    uint32_t connections;
    /** Reserved; 0. */
    uint32_t reserved2;
    /**
     * The receiver's address, as hvc_migrate_connect() takes it: where
     * the extra @c connections go, and, with ::HVC_MIGRATE_POSTCOPY over
     * TCP, post-copy's page channel (without it, the page requests share
     * the main connection). NULL: none. Read during the call.
     */
    const char *address;
} hvc_migrate_options;

/** Initialiser for ::hvc_migrate_options: no key, 10 ms downtime, 30
 * rounds, no timeout, no TLS, no bandwidth limit, one connection. */
#define HVC_MIGRATE_OPTIONS_INIT                                               \
    {                                                                          \
        sizeof(hvc_migrate_options), 0, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL, \
            NULL, NULL, 0, 0, 0, 0, NULL                                       \
    }

/**
 * Migrates the running VM @p vm to the receiver at the other end of
 * @p fd (a connected stream socket; a pipe works for the stream but
 * cannot carry the acknowledgement back). Call it on a thread that is no
 * vCPU's; the vCPUs go on running during pre-copy. Dirty tracking (the
 * bitmap) is started on every region and stopped before the return; do
 * not add or remove memory regions, nor track them yourself, meanwhile.
 * The wait for the acknowledgement has no time limit (a destination that
 * dies closes the connection, which ends it).
 *
 * On success the VM is left paused for good: it was handed to the
 * destination, and hvc_vm_resume() refuses it (-EPERM); destroy it. On any
 * failure before the destination's acknowledgement (the destination
 * refused or went away, a write failed, a cancel, the timeout, the
 * progress callback) the VM is resumed if the call paused it, and is
 * otherwise as before the call. Writes use MSG_NOSIGNAL on sockets;
 * ignore SIGPIPE when @p fd is a pipe.
 *
 * With ::HVC_MIGRATE_POSTCOPY the call returns once the destination said
 * every page arrived (0), or when the link failed after the post-copy
 * switchover: then the VM stays paused for good here too, and the error
 * (-ECONNABORTED, -EPIPE or the destination's) says how many pages never
 * reached the destination (also in hvc_migrate_stats::postcopy_pages_lost).
 *
 * @param opts  options, or NULL for the defaults.
 * @param stats receives the statistics (also on failure); may be NULL.
 * With @c opts->tls the sender is the TLS client: it verifies the
 * destination's certificate and waits for its go before anything else
 * (docs/MIGRATION.md, "Transport"); the socket is non-blocking meanwhile
 * and its flags are put back before the return.
 *
 * @return 0; -EINVAL (NULL, bad options, TLS files OpenSSL cannot use);
 *         -EKEYREJECTED when a certificate was refused (either side's);
 *         -EPROTO when the TLS handshake failed otherwise; -ENOTSUP when
 *         libssl cannot be loaded; -EBUSY when the VM is paused or
 *         a migration of it is running; -ECANCELED (hvc_vm_migrate_cancel()
 *         or the callback); -ETIMEDOUT; -ECONNABORTED when the destination
 *         closed the connection without acknowledging, or the
 *         destination's error when it refused the stream (the message
 *         says which); a write's or the dirty tracking's error. With
 *         several connections also -EINVAL for more than
 *         ::HVC_MIGRATE_CONNECTIONS_MAX, no @c address or a malformed
 *         one, and an extra connection's error (connect(2)'s, TLS's, a
 *         refused hello, a write's), with the VM running on.
 */
HVC_EXTERN int hvc_vm_migrate_send(hvc_vm *vm, int fd,
                                   const hvc_migrate_options *opts,
                                   hvc_migrate_stats *stats);

/**
 * Asks a running hvc_vm_migrate_send() of @p vm to stop, from any
 * thread: it returns -ECANCELED soon after and the VM runs on. Has no
 * effect once the whole stream was sent (the destination may have
 * started the guest), nor when no migration runs.
 *
 * @return 0; -EINVAL for NULL.
 */
HVC_EXTERN int hvc_vm_migrate_cancel(hvc_vm *vm);

/**
 * Receives a VM from hvc_vm_migrate_send() at the other end of @p fd, as
 * hvc_vm_restore_fd() would, then acknowledges it to the sender. The VM
 * is handed over only when the whole stream was read and checked (and
 * authenticated, when encrypted) and the acknowledgement was written; on
 * any error the sender is told (when it can be) and nothing is left.
 *
 * With @c opts->tls the connection is TLS (the receiver is the server,
 * docs/MIGRATION.md, "Transport"): the handshake comes first, then the
 * stream and the acknowledgement inside it.
 *
 * A sender with several connections (hvc_migrate_options::connections)
 * opens the others to the address @c opts->listen_fd listens on: the
 * call accepts them there (each with its TLS handshake under TLS), checks
 * that each names the session the stream carries, refuses and closes any
 * other connection (a warning through the log hook says why), and reads
 * guest memory from all of them on threads of its own. It waits 10 s at
 * most for them, and stops waiting when the main connection ends. Guest
 * memory is complete, and the stream goes on, only once every connection
 * delivered its last round and its totals matched; a failure on any of
 * them refuses the stream like any other.
 *
 * When the sender switched over to post-copy, the VM is handed over as
 * soon as its state was read and checked, with the pages not yet sent
 * missing: its guest memory is registered with userfaultfd, and two
 * library threads (one placing the pages the sender pushes, one serving
 * faults by asking the sender for the page) fill it in the background
 * from a duplicate of @p fd (the caller may close its own). vCPUs and
 * device threads that touch a missing page wait for it; the library's
 * accessors (hvc_vm_read(), hvc_vm_write(), hvc_vm_gpa_to_hva() and the
 * hvc_device_ ones) wait for the pages of their range before they touch
 * it, holding no lock — except on the VM's event thread (fd-watch and
 * doorbell callbacks), which never waits on the link: there they fail
 * with -EAGAIN, and the library's own devices set such a request aside
 * until its pages arrive (docs/MIGRATION.md, "Devices during
 * post-copy"). Removing a memory region is refused (-EBUSY) until
 * post-copy ended. Follow it with hvc_vm_postcopy_stats() and
 * hvc_vm_postcopy_wait(). A sender that sends nothing for
 * @c opts->timeout_ms during post-copy fails it as a cut link does.
 *
 * @return as hvc_vm_restore_fd(); -ENODATA when the sender went away
 *         before the end of the stream; -ETIMEDOUT when it sent nothing
 *         for hvc_restore_options::timeout_ms (default 30 s) with the
 *         connection open (nothing is started); -EPIPE (or the write's error)
 *         when the acknowledgement could not be written, which leaves
 *         nothing either (the sender resumes its VM); with TLS,
 *         -EINVAL for bad TLS options or files OpenSSL cannot use,
 *         -EKEYREJECTED when the sender's certificate was refused (or it
 *         refused ours), -EPROTO when the handshake failed otherwise,
 *         -ENOTSUP when libssl cannot be loaded;
 *         -ENOTSUP (with
 *         nothing left) for a post-copy stream when the host has no usable
 *         userfaultfd or a region's memory cannot take one.
 */
HVC_EXTERN int hvc_vm_migrate_receive(hvc_hypervisor *hv, int fd,
                                      const hvc_restore_options *opts,
                                      hvc_vm **out);

/**
 * Saves the running VM @p vm to a snapshot file at @p path while it runs:
 * the pre-copy of hvc_vm_migrate_send() into a file. Memory is written
 * while the guest runs, then again for the pages it wrote meanwhile, until
 * what is left fits @c max_downtime_ms at the measured write rate; only
 * then is the VM paused, for the last pages and the state, and resumed
 * once they are written. The file is written atomically (a temporary file
 * next to @p path, synced and renamed); on any failure it is removed, a
 * file already at @p path is kept, and the VM runs on as before.
 *
 * The file restores with hvc_snapshot_restore() or hvc_vm_restore_fd(),
 * read (a page written in several rounds appears several times, the last
 * one wins); its memory is not laid out for ::HVC_RESTORE_MMAP, which
 * then reads it instead of mapping it. Options and statistics are those
 * of hvc_vm_migrate_send() (@c downtime_us is the pause; no
 * acknowledgement is awaited); hvc_vm_migrate_cancel() stops it from any
 * thread. Call it on a thread that is no vCPU's, and do not add or remove
 * memory regions meanwhile.
 *
 * @return 0; -EINVAL (NULL, an empty path, bad options); -EBUSY when the
 *         VM is paused or a migration or live snapshot of it runs;
 *         -ECANCELED; -ETIMEDOUT; a file system error (the message names
 *         the path).
 */
HVC_EXTERN int hvc_snapshot_save_live(hvc_vm *vm, const char *path,
                                      const hvc_migrate_options *opts,
                                      hvc_migrate_stats *stats);

/** @} */

#ifdef __cplusplus
}
#endif

/* The destination's side of post-copy, split out for size. */
#include "postcopy.h"

#endif /* HVCORE_MIGRATION_H */
