/*
 * Core-private definitions. Backend-agnostic: never include <linux/kvm.h>
 * here. Internal functions are prefixed hvi_ so that a static link does not
 * pollute the caller's namespace with generic names.
 */
#ifndef HVCORE_CORE_INTERNAL_H
#define HVCORE_CORE_INTERNAL_H

#include <hvcore.h>
#include <hvcore/device.h>
#include <hvcore/sys/backend.h>

#include "../os/os.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define HVI_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Escapes at most max_in bytes of s (stopping at its NUL) into buf: a
 * quote and a backslash get a backslash before them, control bytes and
 * bytes >= 0x7f become a backslash, 'x' and two hex digits; a result
 * too long for buf ends in "...". Returns buf. For any string from a
 * stream, a guest, a file or a caller before it enters a message. */
const char *hvi_quote(char *buf, size_t size, const char *s, size_t max_in);
#define HVI_QUOTE_MAX 160
/* hvi_quote() into a buffer that lives until the end of the enclosing
 * block: hvi_error(..., "\"%s\"", HVI_QUOTE(name)). */
#define HVI_QUOTE(s)                                                           \
    hvi_quote((char[HVI_QUOTE_MAX]){0}, HVI_QUOTE_MAX, (s), SIZE_MAX)
#define HVI_QUOTE_N(s, n)                                                      \
    hvi_quote((char[HVI_QUOTE_MAX]){0}, HVI_QUOTE_MAX, (s), (n))

/* Records a message for hvc_last_error() and returns err (negative). */
int hvi_error(int err, const char *fmt, ...) HVI_PRINTF(2, 3);
/* Hands a message to the log hook (hvc_set_log), if one takes @p level
 * (an hvc_log_level); one line, no newline, no "hvcore:" prefix. Any
 * thread; keeps errno and hvc_last_error(). */
void hvi_log(int level, const char *fmt, ...) HVI_PRINTF(2, 3);

/* Reads the caller's options struct: rejects a size this library cannot
 * interpret, copies what the caller's size covers over the defaults. */
int hvi_copy_options(void *dst, size_t dst_size, const void *src,
                     size_t min_size, const char *what);

/* The backend registry (registry.c). */
extern const hvc_backend_ops *const hvi_backends[];
extern const size_t hvi_backend_count;

struct hvc_hypervisor {
    const hvc_backend_ops *ops;
    void *priv;
    atomic_uint nr_vms;
    /* core17: where ops points when the backend opened as a test-only
     * variant (hvi_backend_variant); the backend's position in
     * hvi_backends (for the process-wide VM count); HVC_CAP_MAX_VMS,
     * 0 for no limit. */
    hvc_backend_ops variant;
    size_t index;
    uint64_t max_vms;
};

/* registry.c (core17): fills *copy with a test-only variant of ops for
 * this open and returns 1, or returns 0. */
int hvi_backend_variant(const hvc_backend_ops *ops, hvc_backend_ops *copy);
/* hypervisor.c (core17): get_cap with the core's answers for what a
 * backend leaves out (HVC_CAP_MAX_VMS, HVC_CAP_PAGE_SIZE). */
int hvi_get_cap(hvc_hypervisor *hv, int cap, uint64_t *value);
/* hypervisor.c (core17): counts a VM against HVC_CAP_MAX_VMS (-EBUSY with
 * a message beyond it) and gives the place back. */
int hvi_vm_count_take(hvc_hypervisor *hv);
void hvi_vm_count_put(hvc_hypervisor *hv);

struct hvc_memory_region {
    hvc_vm *vm;
    uint64_t gpa;
    uint64_t len;
    uint8_t *hva;
    uint32_t flags;
    uint32_t slot;
    int fd;     /* memfd when library-allocated, else -1 */
    bool owned; /* hva is the library's mapping (memfd or anonymous) */
    /* Dirty tracking (dirty.c). dirty_mode: hvc_dirty_mode bits, 0 when
     * untracked; it and lib_dirty change only with mem_lock write-held.
     * lib_dirty: one bit per page the library wrote (hvc_vm_write, marks),
     * set by accessors under the read lock, taken by fetches. */
    uint32_t dirty_mode;
    _Atomic uint64_t *lib_dirty;
};

struct hvi_io_range {
    uint64_t base;
    uint64_t end; /* exclusive */
    hvc_io_fn fn;
    void *opaque;
};

struct hvi_io_table {
    struct hvi_io_range *v; /* sorted by base, non-overlapping */
    size_t n;
    size_t cap;
};

struct hvi_tsc; /* tsc_internal.h */
struct hvi_uirq; /* irq_user.c */

/* Locks of a VM, and the order they are taken in. A thread holding one may
 * take only locks further down the list, never one above it:
 *
 *   1. ev_lock       held by the event thread across each fd-watch or
 *                    doorbell callback (event.c); hvc_vm_unwatch_fd() takes
 *                    it to wait for a callback that is running.
 *   2. dev_ops_lock  serialises what calls into every device: reset,
 *                    quiesce on pause and resume, and unlinking a device
 *                    that is being removed (device.c). Device callbacks
 *                    run under it, so they take only the locks below.
 *   3. io_lock       the I/O range tables (io.c): read-held while a handler
 *                    runs, write-held to add or remove a range.
 *   4. a device's own locks (serial.c; virtio: virtio_dev.h gives theirs).
 *   5. mem_lock      the guest memory map (memory.c), read-held while guest
 *                    memory is copied (hvc_vm_read() and friends).
 *   6. leaves, held only around their own data and never while calling
 *      out or taking another lock: dev_lock (the device list, doorbells,
 *      interrupt eventfds), watch_lock (the event thread's watch table, so
 *      that watching a descriptor never waits for a callback), vm->lock
 *      (vCPU list, pause state, read_state, TSC state), the log lock,
 *      a device's grant_lock (its memory grants, device.c).
 *
 * Post-copy (src/migration/postcopy_recv.c) adds two leaves: a VM's
 * postcopy->lock (page state, statistics, the condition waiters sleep on)
 * and postcopy->wlock (writing a page request to the source); placing
 * pages holds postcopy->place_lock, then postcopy->lock inside it for the
 * samples; over TLS a stream's session lock (postcopy->main.tls.lock,
 * ->chan.tls.lock) is held for each call into OpenSSL, never across a
 * wait, inside postcopy->wlock for a request. Its fault, receiver and
 * channel threads take only those and never any lock above, nor mem_lock (vm->lock, a leaf, only to kick the vCPUs when
 * post-copy fails, holding neither): a thread that faults on a missing page
 * while holding any lock (a device worker inside its own lock, an accessor
 * under mem_lock) waits for a thread that needs none of them. The accessors
 * (hvc_vm_read, hvc_vm_write, hvc_vm_gpa_to_hva, hence the hvc_device_ ones and
 * the virtqueue walk) wait for missing pages in hvi_postcopy_fetch() before
 * they take mem_lock, so they never fault afterwards and fail with -EIO
 * instead of reading a lost page.
 *
 * The event thread never waits on the link: on it, the accessors do not
 * wait for a missing page but ask for it and fail with -EAGAIN, and the
 * device models it runs (the virtqueue walk of virtio-rng and
 * virtio-console, the console's receive check) look first: a ring or
 * buffer with a missing page is left where it is, and
 * hvi_postcopy_when_present() has the receiver call them back when it
 * lands. That callback (hvi_vdev_rekick(): it sets a notify bit and
 * writes the device's notify eventfd) runs on the receiver or channel
 * thread under a third post-copy leaf, postcopy->wake_lock, which
 * guards the list of such waiters and is held while one is called:
 * callbacks take no lock at all, so any thread may register one while
 * holding anything (the event thread holds ev_lock and a device's lock,
 * a virtio-blk worker its device lock), and hvi_postcopy_forget() (a
 * device being destroyed) returns only once none of its callbacks runs.
 * The event thread's page requests only try postcopy->wlock (and the
 * TLS session's lock) and write without blocking: a request that cannot
 * go at once is asked again at the next look, the push bringing the page
 * meanwhile. (Over TLS, once the session took a request's first bytes the
 * rest is written whatever it takes: TLS wants a write asked again until
 * it went. That waits only when the source stops reading.)
 * A model with a thread of its own may opt in as well (virtio-blk does,
 * vdev_model.defer_missing), so that its worker never sleeps on the
 * link holding its device lock, which the vCPUs and the event thread
 * take.
 *
 * Parallel migration connections (src/migration/par_send.c, par_recv.c)
 * add leaves of their own, taken by no caller of the library: the
 * sender's round mutex (a round's start and end between the sending
 * thread and its connection workers) and the receiver's per-page locks
 * (comparing a page's round and copying it in). The workers write guest
 * pages to sockets and into a new VM's memory without any lock above.
 *
 * The library's userspace interrupt controllers (irq_user.c, branch irq17;
 * VMs with HVC_VM_USER_IRQCHIP) add two more, below every other lock,
 * vm->lock included (a state save reads the chips under it):
 *   7. the chips' lock (struct hvi_irqchip.lock, src/arch/x86/irqchip.h):
 *      one mutex for all LAPICs, the IOAPIC, the 8259s and the PIT of a
 *      VM, since a delivery crosses them. Its callbacks kick and wake vCPUs
 *      (atomics and a semaphore) and take only:
 *   8. uirq->tlock, the timer thread's condition (irq_user.c).
 *
 * vCPU threads (core17, vcpu_forward.c), on backends that bind vCPUs to
 * threads: each vCPU's home->lock is a leaf (the queue of forwarded calls,
 * the stop flag, the done flags of calls its own thread waits for), held
 * only around that data and never while calling out. A forwarded call may
 * be made with any lock held (vm->lock included: state.c and the TSC code
 * forward under it) as long as the vCPU thread needs none of those locks
 * to reach a drain point. The vCPU thread drains its queue between exits
 * (before any lock), while parked, and while it waits for vm->lock in park
 * and leave (hvi_vcpu_lock_vm: a timed lock, draining every 100 us), so
 * a caller holding vm->lock is served. It does not drain inside an I/O
 * handler: a thread that forwards to a vCPU while holding a lock that
 * vCPU's handler waits for (io_lock write, a device lock, dev_ops_lock)
 * would deadlock, and the core never does; a caller on another vCPU's
 * thread keeps draining its own queue while it waits, so two vCPU threads
 * calling each other do not deadlock. A callback on the vCPU's own thread
 * calls it inline.
 * The eventfd fallbacks (notify.c) add no lock: the run loop takes
 * dev_lock (a leaf) to match a doorbell, the event thread takes it to map
 * an interrupt eventfd to its line (under ev_lock, above it).
 *
 * So any callback may look devices up, watch descriptors and read guest
 * memory. Not locks: hvc_vcpu.state, kick_pending, rekick, leaving and the
 * VM's pause_depth and active are atomics (see hvi_vcpu_interrupt());
 * parked runners wait on a semaphore; the last error is thread-local.
 * Calls that must wait for callbacks (pause, destroy, remove_device,
 * reset_devices) refuse with -EDEADLK from the VM's own handlers and event
 * thread (hvi_handler_vm, hvi_event_vm) instead of deadlocking on 1 or 3.
 * Live migration adds no lock: auto-converge's throttle thread
 * (migration/throttle.c) holds none while it calls hvc_vm_pause/resume,
 * as any caller would, and the libraries loaded on first use share one
 * leaf mutex (os/linux/lazy.c), held only around dlopen/dlsym. */
/* present.c: 1 when [gpa, gpa+len) is present, 0 when a page of it is
 * missing (and then requested). */
typedef int (*hvi_present_fn)(void *opaque, uint64_t gpa, uint64_t len);

struct hvc_vm {
    hvc_hypervisor *hv;
    const hvc_backend_ops *ops;
    void *priv;
    hvc_vm_options opts;
    uint32_t max_slots;
    uint64_t max_gpa; /* exclusive bound from the backend's address width */
    uint32_t nr_irqs; /* interrupt lines (GSIs), from the backend */

    /* Guest memory map, sorted by gpa. Readers: accessors, writers: add and
     * remove. */
    pthread_rwlock_t mem_lock;
    hvc_memory_region **regions;
    size_t nr_regions;
    uint8_t *slot_used; /* max_slots entries */
    pthread_mutex_t dirty_lock;
    /* Whether guest pages are present (present.c): NULL while all are,
     * the post-copy destination's (or a test's) answer otherwise. Under
     * mem_lock. */
    hvi_present_fn present_fn;
    void *present_opaque;

    /* I/O dispatch, one table per hvc_io_space. The read lock is held across
     * a handler call, so removal waits for running handlers. */
    pthread_rwlock_t io_lock;
    struct hvi_io_table io[2];

    /* vCPU list and pause state. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    hvc_vcpu **vcpus; /* opts.max_vcpus slots, indexed by id */
    uint32_t nr_vcpus;
    atomic_int pause_depth;
    atomic_int active; /* vCPUs inside hvc_vcpu_run() and not parked */
    /* Live migration (src/migration/live.c): a cancel asked from any
     * thread, and set for good once the guest moved to a destination, so
     * that hvc_vm_resume() refuses to run it here again. */
    atomic_int migrate_cancel;
    atomic_int migrated_away;
    atomic_int migrating; /* a hvc_vm_migrate_send() or a hand-over runs */
    /* The descriptors a hand-over brought (src/migration/handover_fds.c),
     * set only while hvc_vm_handover_receive() builds this VM, which no
     * other thread can see yet: no lock. */
    struct hvi_handover *handover;
    /* Incoming post-copy (src/migration/postcopy_recv.c): the state, set
     * before the VM is handed out and freed by hvc_vm_destroy();
     * postcopy_active is 1 from then until every page arrived (and stays
     * 1 when the link failed); postcopy_failed makes hvc_vcpu_run() and
     * hvc_vm_resume() refuse. */
    struct hvi_postcopy *postcopy;
    atomic_int postcopy_active;
    atomic_int postcopy_failed;

    /* Devices, in attachment order (device.c), interrupt eventfds and
     * doorbells (notify.c), all under dev_lock (a leaf). */
    pthread_mutex_t dev_lock;
    hvc_device *devices;
    /* Serialises device resets, the quiesce hooks that hvc_vm_pause() and
     * hvc_vm_resume() run (so that a nested pause returns only once every
     * device is quiescent), and removals (device.c). Never taken with
     * vm->lock held, nor on a vCPU thread. */
    pthread_mutex_t dev_ops_lock;
    int *irq_fd; /* nr_irqs entries, -1 when unused */
    struct hvi_doorbell *doorbells;
    /* core17: the eventfd fallbacks (notify.c) for backends without
     * vm_irqfd / vm_ioeventfd: doorbells the run loop matches, and how
     * many doorbell writes and interrupt eventfd signals they carried. */
    atomic_uint nr_emulated_doorbells;
    atomic_ulong fallback_doorbells;
    atomic_ulong fallback_irqs;

    /* The event thread (event.c). ev_lock is held while a callback runs;
     * watch_lock guards the watch table. */
    pthread_mutex_t ev_lock;
    pthread_mutex_t watch_lock;
    bool ev_running;
    pthread_t ev_thread;
    struct hvi_os_poller *ev_poller;
    struct hvi_watch *watches;
    size_t nr_watches;

    /* TSC frequency, shared offset, policy and pause point (tsc.c). */
    struct hvi_tsc *tsc;

    /* The sharing guard (audit.c): hvc_sharing_kind bits that make the
     * outermost hvc_vm_resume() refuse; 0 when off. */
    atomic_uint sharing_guard;

    /* The library's userspace interrupt controllers and their timer thread
     * (irq_user.c), NULL unless opts.flags has HVC_VM_USER_IRQCHIP. Set at
     * creation, freed at destruction. */
    struct hvi_uirq *uirq;
};

/* hvc_vcpu.state: who may touch the runner thread.
 *   IDLE     no thread is in hvc_vcpu_run()
 *   STARTING a thread entered hvc_vcpu_run() but the backend does not know
 *            it yet (vcpu_run_prepare): kicks only leave flags, which the
 *            runner reads before it first enters the guest
 *   RUNNING  the backend knows the runner: a kicker may take KICKING
 *   KICKING  one kicker is calling the backend's vcpu_kick(); the runner
 *            cannot leave hvc_vcpu_run() until it is done, so the thread
 *            it signals exists. Another kicker that finds KICKING sets
 *            rekick instead of waiting, and the first kicks again. */
/* hvc_vcpu.read_state, changed under vm->lock once the exit is out: a save
 * (hvi_vcpu_take_io) and hvc_vcpu_complete_io() exclude each other. */
enum {
    HVI_READ_NONE = 0,      /* the last exit is no unclaimed read */
    HVI_READ_PENDING = 1,   /* reads all-ones unless completed */
    HVI_READ_COMPLETED = 2, /* hvc_vcpu_complete_io() supplied the data */
    HVI_READ_TAKEN = 3      /* a save took the data in; too late to change */
};

enum {
    HVI_VCPU_IDLE = 0,
    HVI_VCPU_RUNNING = 1,
    HVI_VCPU_KICKING = 2,
    HVI_VCPU_STARTING = 3
};

struct hvc_vcpu {
    hvc_vm *vm;
    void *priv;
    uint32_t id;
    atomic_int state;
    atomic_int kick_pending;
    atomic_int rekick;  /* an interrupt was asked while KICKING */
    atomic_int leaving; /* the runner is on its way out: kicks only leave
                         * their flags (a kicker that kept taking KICKING
                         * would keep it from ever leaving) */
    hvi_os_wake parked; /* posted to wake the runner parked by a pause */
    pthread_t runner;   /* meaningful while state != IDLE */
    void *user_data;
    atomic_int read_state; /* HVI_READ_*: the last exit's unclaimed read */
    bool io_pending;       /* last exit was port or MMIO I/O: its data
                            * reaches the registers only at the next entry
                            * (hvi_vcpu_flush) */
    uint32_t pending_exit; /* hvc_vcpu_request_exit() from a callback */
    uint64_t pending_code;
    hvc_exit exit;
    /* core17: the vCPU's own thread when the backend binds vCPUs to
     * threads (HVC_BACKEND_VCPU_THREAD_BOUND), NULL otherwise. Set before
     * the vCPU is published, cleared after it is unpublished. */
    struct hvi_vcpu_home *home;
};

/* The VM whose I/O handler is running on this thread, if any: calls that
 * would wait for that handler refuse instead of deadlocking. */
extern _Thread_local hvc_vm *hvi_handler_vm;
/* The VM whose event thread this is (event.c): calls that would wait for
 * an fd-watch or doorbell callback, or for vCPUs that may wait for one,
 * refuse with -EDEADLK there. */
extern _Thread_local hvc_vm *hvi_event_vm;

/* vm.c: the number of interrupt lines (GSIs), from the backend. */
uint32_t hvi_vm_irq_lines(const hvc_vm *vm);

/* io.c */
int hvi_io_dispatch(hvc_vcpu *vcpu, hvc_exit *exit, bool *claimed);
void hvi_io_free(hvc_vm *vm);

/* audit.c: the sharing guard's check, called by hvc_vm_resume() before it
 * takes vm->lock (the audit read-holds mem_lock, above it). */
int hvi_audit_resume_check(hvc_vm *vm);

/* memory.c */
void hvi_memory_free_all(hvc_vm *vm);
uint64_t hvi_memory_top(hvc_vm *vm);
size_t hvi_memory_count(hvc_vm *vm);

/* Post-copy (src/migration/postcopy_recv.c), for the accessors and the
 * device models. hvi_postcopy_fetch() makes every page of [gpa, gpa+len)
 * present before the caller touches it: it asks the source for the
 * missing ones and waits for them (holding no lock of its own while it
 * waits); 0, or -EIO (with a message) when post-copy failed and a page
 * of the range was lost. Ranges outside guest RAM are left to the caller's
 * own check. Cheap when the VM is not in post-copy. */
int hvi_postcopy_fetch_slow(hvc_vm *vm, uint64_t gpa, uint64_t len);
static inline int hvi_postcopy_fetch(hvc_vm *vm, uint64_t gpa, uint64_t len)
{
    if (!atomic_load_explicit(&vm->postcopy_active, memory_order_acquire))
        return 0;
    return hvi_postcopy_fetch_slow(vm, gpa, len);
}
/* Never waits: 1 when every page of [gpa, gpa+len) is present (or the VM
 * is not in post-copy), 0 when some are not (those are asked for now,
 * ahead of the pushed pages; call again later, or wait in
 * hvi_postcopy_fetch()), -EIO when one was lost. For code that must not
 * block, such as a device model on the event thread deciding whether a
 * receive buffer can be filled now. Any thread, any lock held. */
int hvi_postcopy_want(hvc_vm *vm, uint64_t gpa, uint64_t len);
/* Called back once when a range a caller could not use arrived (or when
 * post-copy ended either way: the caller then looks again and finds the
 * range present or lost). Runs on a post-copy thread under
 * postcopy->wake_lock: it must only signal (write an eventfd, set an
 * atomic), never take a lock nor call into the library. */
typedef void (*hvi_page_wake_fn)(void *opaque, uint32_t arg);
/* Never waits: 1 when [gpa, gpa+len) is present (or the VM is not in
 * post-copy); 0 when a page is missing: it was asked for, and @p fn
 * (@p opaque, @p arg) will be called once when the range is here. A
 * second registration with the same fn, opaque and arg replaces the
 * first (one wake per device queue). -EIO when a page was lost, -ENOMEM
 * (nothing armed). Any thread, any lock held. */
int hvi_postcopy_when_present(hvc_vm *vm, uint64_t gpa, uint64_t len,
                              hvi_page_wake_fn fn, void *opaque, uint32_t arg);
/* Drops every callback registered with @p opaque; once it returns, none
 * runs (or will). */
void hvi_postcopy_forget(hvc_vm *vm, void *opaque);
/* vm.c: stops the post-copy threads and frees the state (destroy). */
void hvi_postcopy_free(hvc_vm *vm);

/* dirty.c: records a library write of [gpa, gpa+len) inside region r
 * (after the write; mem_lock read-held). Cheap when r is untracked. */
void hvi_dirty_mark(hvc_memory_region *r, uint64_t gpa, uint64_t len);
/* dirty.c: stops tracking before r is removed (mem_lock write-held). */
void hvi_dirty_drop(hvc_memory_region *r);

/* present.c: whether a device may write [gpa, gpa+len) now without
 * waiting for a page that has not arrived (post-copy: the page is not
 * present yet under userfaultfd). 1 present; 0 missing, its fetch asked
 * for at once (the caller sets the buffer aside and looks again later,
 * never waits). Takes mem_lock (read): callable under the device locks.
 * The hook must not block, nor take a lock above mem_lock; it is called
 * with mem_lock read-held. Today nothing installs one but the tests
 * (every page is present); post-copy installs its own. */
int hvi_vm_gpa_present(hvc_vm *vm, uint64_t gpa, uint64_t len);
void hvi_vm_set_present_hook(hvc_vm *vm, hvi_present_fn fn, void *opaque);
/* memory.c (net16): hvc_vm_gpa_to_hva() without waiting for pages of an
 * incoming post-copy that have not arrived: for a caller that asks
 * hvi_vm_gpa_present() before it touches the bytes (the virtqueue walk of
 * virtio-net's receive queue), so that a missing buffer is set aside
 * rather than waited on. Errors as hvc_vm_gpa_to_hva(). */
int hvi_vm_gpa_to_hva_nowait(hvc_vm *vm, uint64_t guest_addr, size_t length,
                             void **out);

/* record.c: self-describing state records (tagged, typed fields). */
enum { HVI_REC_U64 = 1, HVI_REC_BYTES = 2 };
struct hvi_rec_writer {
    uint8_t *buf; /* NULL: only count */
    size_t cap;
    size_t len; /* bytes written, or needed when overflow */
    bool overflow;
};
struct hvi_rec_reader {
    const uint8_t *buf;
    size_t len;
    const char *what; /* for messages: the device name */
};
void hvi_rec_u64(struct hvi_rec_writer *w, uint16_t tag, uint64_t v);
void hvi_rec_bytes(struct hvi_rec_writer *w, uint16_t tag, const void *p,
                   uint32_t n);
int hvi_rec_get_u64(const struct hvi_rec_reader *r, uint16_t tag, uint64_t *v);
int hvi_rec_get_bytes(const struct hvi_rec_reader *r, uint16_t tag,
                      const void **p, uint32_t *n);
uint32_t hvi_crc32c(uint32_t crc, const void *buf, size_t len);
/* The byte table of the portable path, constant (src/core/crc32c.c). */
extern const uint32_t hvi_crc32c_table[256];

/* Copies of the VM's region and device lists, taken under their locks
 * (a caller frees the array). */
int hvi_memory_snapshot(hvc_vm *vm, hvc_memory_region ***out, size_t *count);

/* memory_host.c: where a region's memory may hold data, found without
 * touching (and so allocating) a page; the host layer's walk
 * (src/os/os.h). Outside the extents next_data reports, every page reads
 * as zero. */
struct hvi_os_memory_walk;
int hvi_memory_walk_open(const hvc_memory_region *r,
                         struct hvi_os_memory_walk **out);
/* The next extent [*start, *end), in bytes from the region's start, at or
 * after off; *start == r->len when no data remains. */
int hvi_memory_next_data(struct hvi_os_memory_walk *w, uint64_t off,
                         uint64_t *start, uint64_t *end);
void hvi_memory_walk_close(struct hvi_os_memory_walk *w);
/* Gives back [off, off+len) of a region's memfd (the library's own,
 * not on huge pages), which then reads as zero; -ENOTSUP for any other
 * memory, which is left alone. */
int hvi_memory_discard(hvc_memory_region *r, uint64_t off, uint64_t len);
int hvi_devices_snapshot(hvc_vm *vm, hvc_device ***out, size_t *count);

/* device.c: 0 when [gpa, gpa+len) lies wholly inside one of the device's
 * memory grants (always for a NULL device); else counts a refusal, logs
 * it, and returns -EFAULT with a message. Takes only the device's
 * grant_lock (a leaf): callable under any lock. It does not check that
 * the range is RAM: the accessor that follows does. */
int hvi_device_check_grant(hvc_device *dev, uint64_t gpa, uint64_t len);

/* device.c: the ops a device was attached with. */
const hvc_device_ops *hvi_device_ops(const hvc_device *dev);
/* The device's hand-over descriptors (ops version 2), -1 for an empty
 * slot; *count 0 when it has none. -E2BIG past @p capacity. */
int hvi_device_handover_fds(hvc_device *dev, int *fds, size_t capacity,
                            size_t *count);

/* device.c: quiesce hooks, for the library's own device models that do
 * work on threads of their own (virtio-blk's request worker). fn(opaque,
 * true) returns once the device has no request half-done and starts none
 * until fn(opaque, false); it may wait for a request that is running, but
 * must never wait for the event thread, a vCPU, or a VM-level lock.
 * hvi_device_set_quiesce() quiesces the device at once if the VM is paused.
 * hvi_devices_quiesce() runs each hook once per pause (it remembers which
 * devices it quiesced), with dev_ops_lock held; vm.c calls it
 * with no other lock held, after the vCPUs stopped and before they may run
 * again. */
typedef void (*hvi_quiesce_fn)(void *opaque, bool quiesce);
void hvi_device_set_quiesce(hvc_device *dev, hvi_quiesce_fn fn);
void hvi_devices_quiesce(hvc_vm *vm, bool quiesce);
/* Quiesces (or lets go) every device of a VM that is not paused and that
 * no caller sees yet, whatever the pause depth: a hand-over receive
 * (src/migration/handover_recv.c) holds the new VM's devices from their
 * attachment to its confirmation. Takes dev_ops_lock. */
void hvi_devices_hold(hvc_vm *vm, bool hold);

/* notify.c: a doorbell that no event-thread callback serves: the caller
 * waits on its notifier *fd itself (a device's own thread), reading it to
 * clear it. The descriptor stays the VM's: hvc_vm_remove_doorbell() and
 * VM destruction close it, so a thread that may outlive it waits on a
 * dup(). */
int hvi_vm_add_doorbell_fd(hvc_vm *vm, const hvc_doorbell *db, int *fd);

/* notify.c (core17): the ioeventfd fallback, called by the run loop for
 * a guest write before the I/O handlers: true when it rang a doorbell
 * (its eventfd signalled, the access claimed). Takes dev_lock. */
bool hvi_doorbell_match(hvc_vm *vm, int space, uint64_t addr, uint32_t size,
                        const void *data);

/* device.c, event.c: teardown at VM destruction. */
void hvi_devices_free(hvc_vm *vm);
void hvi_notify_free(hvc_vm *vm);
void hvi_event_stop(hvc_vm *vm);

/* vcpu_forward.c (core17): vCPU threads for thread-bound backends.
 * hvi_vcpu_call() runs fn(v, arg) on v's thread and returns its result
 * (with its message): inline when the backend is not thread-bound or the
 * caller is that thread, else queued there, the runner kicked out of the
 * guest or woken from a pause, and waited for. Any thread, any lock held
 * that v's thread never needs to reach a drain point (vm->lock is fine:
 * the vCPU thread drains while it waits for it, hvi_vcpu_lock_vm). */
int hvi_vcpu_call(hvc_vcpu *v, int (*fn)(hvc_vcpu *v, void *arg), void *arg);
/* true when the caller may call v's backend vCPU directly. */
bool hvi_vcpu_on_home(const hvc_vcpu *v);
/* On v's thread: runs what other threads queued for it. */
void hvi_vcpu_drain(hvc_vcpu *v);
/* Takes vm->lock; on a vCPU thread, serving its queue while it waits. */
void hvi_vcpu_lock_vm(hvc_vcpu *v);
int hvi_vcpu_home_start(hvc_vcpu *v);
void hvi_vcpu_home_stop(hvc_vcpu *v); /* joins it; never on itself */

/* vcpu_backend.c (core17): the backend's vCPU calls, through
 * hvi_vcpu_call(). The rest of the core calls these, never the ops. */
int hvi_bk_get_regs(hvc_vcpu *v, const hvc_reg *ids, uint64_t *values,
                    size_t count);
int hvi_bk_set_regs(hvc_vcpu *v, const hvc_reg *ids, const uint64_t *values,
                    size_t count);
int hvi_bk_get_segment(hvc_vcpu *v, hvc_reg id, hvc_x86_segment *seg);
int hvi_bk_set_segment(hvc_vcpu *v, hvc_reg id, const hvc_x86_segment *seg);
int hvi_bk_fpu_size(hvc_vcpu *v, size_t *size);
int hvi_bk_get_fpu(hvc_vcpu *v, void *buf, size_t length);
int hvi_bk_set_fpu(hvc_vcpu *v, const void *buf, size_t length);
int hvi_bk_set_runnable(hvc_vcpu *v);
int hvi_bk_flush(hvc_vcpu *v);
int hvi_bk_state_size(hvc_vcpu *v, uint32_t kind, size_t *size);
int hvi_bk_get_state(hvc_vcpu *v, uint32_t kind, void *buf, size_t length);
int hvi_bk_set_state(hvc_vcpu *v, uint32_t kind, const void *buf,
                     size_t length);
int hvi_bk_get_offset(hvc_vcpu *v, uint64_t *offset);
int hvi_bk_set_offset(hvc_vcpu *v, uint64_t offset);
int hvi_bk_apply_frequency(hvc_vcpu *v);

/* vcpu.c: takes the runner out of the guest if there is one. */
void hvi_vcpu_interrupt(hvc_vcpu *vcpu);
/* vcpu.c: wakes the runner if a pause parked it (async-signal-safe). */
void hvi_vcpu_wake_parked(hvc_vcpu *vcpu);
/* vcpu.c: completes the I/O of the last exit without entering the guest,
 * so the saved registers are those the guest sees next. */
int hvi_vcpu_flush(hvc_vcpu *vcpu);

/* state.c: what a stream carries, through the core, under vm->lock. */
/* The backend's FPU/XSAVE blob (vcpu_fpu_size; CONFIG records its size);
 * streams carry XSAVE as HVC_BACKEND_VCPU_ARCH_XSAVE. */
#define HVI_STATE_FPU 200u
int hvi_state_supported(const hvc_vm *vm);
const char *hvi_vm_backend(const hvc_vm *vm);
uint32_t hvi_vm_max_vcpus(const hvc_vm *vm);
uint32_t hvi_vm_flags(const hvc_vm *vm); /* hvc_vm_options.flags */
/* Stores up to capacity vCPU ids in ascending order; returns how many
 * vCPUs there are. */
uint32_t hvi_vm_vcpu_ids(hvc_vm *vm, uint32_t *ids, uint32_t capacity);
hvc_vcpu *hvi_vm_vcpu(hvc_vm *vm, uint32_t id);
/* Completes the vCPU's last I/O without entering the guest: an unclaimed
 * read takes the data it has then (all-ones, or what the caller supplied
 * with hvc_vcpu_complete_io()); completing it later fails with -EALREADY. */
int hvi_vcpu_take_io(hvc_vcpu *v);
/* Makes a vCPU runnable after its registers were set up (arch code). */
int hvi_vcpu_set_runnable(hvc_vcpu *v);
int hvi_vcpu_state_size(hvc_vcpu *v, uint32_t kind, size_t *n);
int hvi_vcpu_state_get(hvc_vcpu *v, uint32_t kind, void *buf, size_t n);
int hvi_vcpu_state_set(hvc_vcpu *v, uint32_t kind, const void *buf, size_t n);
int hvi_vm_state_size(hvc_vm *vm, uint32_t kind, size_t *n);
int hvi_vm_state_get(hvc_vm *vm, uint32_t kind, void *buf, size_t n);
int hvi_vm_state_set(hvc_vm *vm, uint32_t kind, const void *buf, size_t n);

/* irq_user.c (branch irq17): the userspace interrupt controllers in the
 * core. Creation and teardown (vm.c), the vCPUs joining and leaving
 * (vcpu.c), and the run loop's two hooks: hvi_uirq_enter() before each
 * entry (INIT/SIPI, injection, the interrupt window; 1 asks the loop to
 * look at its flags again without entering) and hvi_uirq_exit() after
 * each exit (1 when the exit was the chips': HLT, the interrupt window,
 * their MSRs, ports and pages). */
int hvi_uirq_create(hvc_vm *vm);
void hvi_uirq_destroy(hvc_vm *vm);
int hvi_uirq_vcpu_created(hvc_vcpu *vcpu);
void hvi_uirq_vcpu_destroyed(hvc_vcpu *vcpu);
void hvi_uirq_started(hvc_vcpu *vcpu);
int hvi_uirq_enter(hvc_vcpu *vcpu);
int hvi_uirq_exit(hvc_vcpu *vcpu, hvc_exit *exit);
int hvi_uirq_set_irq(hvc_vm *vm, uint32_t gsi, int level);
int hvi_uirq_msi(hvc_vm *vm, uint64_t address, uint32_t data);
/* hvc_vcpu_set_regs() of IA32_APIC_BASE (HVC_X86_APIC_BASE or MSR 0x1b)
 * on a VM with the chips: the LAPIC takes it first, as from a guest
 * WRMSR (0, or -EINVAL with a message when it refuses the value); *undo
 * holds the LAPIC's state before, for hvi_uirq_apic_base_done() to put
 * back (when the backend then refuses the call) and free. */
int hvi_uirq_set_apic_base(hvc_vcpu *vcpu, uint64_t value, void **undo);
void hvi_uirq_apic_base_done(hvc_vcpu *vcpu, void *undo, bool put_back);
/* The chips' state as backend state blobs of the LAPIC, PIC, IOAPIC and
 * PIT kinds; 0 from *_owns when the kind is not the chips'. */
bool hvi_uirq_owns(const hvc_vm *vm, uint32_t kind);
int hvi_uirq_state_size(uint32_t kind, size_t *n);
int hvi_uirq_vcpu_state_get(hvc_vcpu *v, uint32_t kind, void *buf, size_t n);
int hvi_uirq_vcpu_state_set(hvc_vcpu *v, uint32_t kind, const void *buf,
                            size_t n);
int hvi_uirq_vm_state_get(hvc_vm *vm, uint32_t kind, void *buf, size_t n);
int hvi_uirq_vm_state_set(hvc_vm *vm, uint32_t kind, const void *buf,
                          size_t n);
/* IA32_TSC_DEADLINE in the LAPIC, for the TSC record (tsc.c); vm->lock
 * held. */
int hvi_uirq_tsc_deadline_get(hvc_vcpu *v, uint64_t *value);
int hvi_uirq_tsc_deadline_set(hvc_vcpu *v, uint64_t value);
/* The userspace PIT's catch-up (tsc.c, tsc_pause.c). */
void hvi_uirq_pit_catchup(hvc_vm *vm, int enable, int drop);
/* The answer to HVC_CAP_IRQCHIP_LAPIC..PIT (hypervisor.c). */
int hvi_uirq_cap(hvc_hypervisor *hv, int cap, uint64_t *value);

#endif
