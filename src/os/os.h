/*
 * The host operating system, as the core sees it. src/core calls only
 * these functions for what differs between hosts: waiting on descriptors,
 * notifiers, guest-memory files, the kick signal and a wake-up that a
 * signal handler may post. src/os/linux implements them today; a
 * src/os/darwin implements the same header.
 *
 * Every function returns 0 (or a count) on success and a negative errno
 * with hvc_last_error() set on failure, unless it says otherwise.
 */
#ifndef HVCORE_OS_OS_H
#define HVCORE_OS_OS_H

#include <hvcore/common.h>
#include <hvcore/device.h>
#include <hvcore/memory.h>

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#if defined(__linux__)
#include <semaphore.h>
/* A counting wake-up; hvi_os_wake_post() is async-signal-safe. */
typedef struct {
    sem_t sem;
} hvi_os_wake;
#else
#error "libhvcore has no src/os layer for this host yet"
/* --- userfaultfd: guest memory whose missing pages another thread fills
 * (post-copy migration, src/migration/postcopy_recv.c) --- */

/* Opens a non-blocking userfaultfd for missing-page faults: the
 * userfaultfd system call, or /dev/userfaultfd where the system call is
 * refused to this process (vm.unprivileged_userfaultfd = 0 without
 * CAP_SYS_PTRACE). -ENOTSUP when the host has neither. */
int hvi_os_uffd_open(int *fd);
/* Registers [hva, hva+len) (page-aligned) for missing-page faults. */
int hvi_os_uffd_register(int fd, void *hva, uint64_t len);
/* Unregisters it: threads waiting on a fault there are woken and fault
 * again normally. */
int hvi_os_uffd_unregister(int fd, void *hva, uint64_t len);
/* Places len bytes from src at dst (page-aligned, missing pages) and
 * wakes their waiters; -EEXIST when a page is present already (nothing of
 * that page is changed). zero: src is ignored, the pages read as zero. */
int hvi_os_uffd_fill(int fd, void *dst, const void *src, uint64_t len,
                     bool zero);
/* Wakes the threads waiting on a fault in [hva, hva+len). */
int hvi_os_uffd_wake(int fd, void *hva, uint64_t len);
/* Waits for a fault on fd or for stop_fd (a notifier) to be readable, up
 * to timeout_ms (-1: no limit). Returns 1 with *addr the faulting address
 * (and *write), 0 when stop_fd is readable or the time is up, or a
 * negative errno. */
int hvi_os_uffd_next(int fd, int stop_fd, int timeout_ms, uint64_t *addr,
                     bool *write);

#endif

/* --- waiting on descriptors (the VM's event thread) --- */

typedef struct hvi_os_poller hvi_os_poller;

/* One ready descriptor: events are HVC_FD_READABLE / HVC_FD_WRITABLE. */
struct hvi_os_ready {
    int fd;
    uint32_t events;
};

int hvi_os_poller_create(hvi_os_poller **out);
/* Watches fd for events (HVC_FD_* bits). */
int hvi_os_poller_add(hvi_os_poller *p, int fd, uint32_t events);
void hvi_os_poller_del(hvi_os_poller *p, int fd);
/* Waits for ready descriptors; returns how many were stored in ready, 0
 * once hvi_os_poller_stop() was called (then and ever after), or a negative
 * errno when waiting itself failed (the caller stops waiting and says so).
 * Retries interrupted waits. */
int hvi_os_poller_wait(hvi_os_poller *p, struct hvi_os_ready *ready, int max);
/* Makes the waiter return 0; any thread. */
void hvi_os_poller_stop(hvi_os_poller *p);
void hvi_os_poller_destroy(hvi_os_poller *p);

/* --- notifiers: a descriptor that counts signals (eventfd on Linux) --- */

int hvi_os_notifier_create(int *fd);
/* Consumes what was signalled; true if there was anything. */
bool hvi_os_notifier_drain(int fd);
/* Signals it once (async-signal-safe, never blocks). */
void hvi_os_notifier_signal(int fd);
void hvi_os_notifier_close(int fd);

/* --- writes without SIGPIPE --- */

/* SIGPIPE (a write to a pipe or socket with no reader; its default action
 * kills the process) held off on this thread from _begin() to _end(),
 * around calls that write without MSG_NOSIGNAL (OpenSSL's): one raised
 * in between is consumed, never delivered, and the write fails with
 * EPIPE like any other error; one the caller had blocked or pending
 * before is left alone. _end() keeps errno. */
typedef struct hvi_os_nosigpipe {
    sigset_t old;
    bool was_pending;
} hvi_os_nosigpipe;
void hvi_os_nosigpipe_begin(hvi_os_nosigpipe *s);
void hvi_os_nosigpipe_end(hvi_os_nosigpipe *s);
/* write(2) so. */
ssize_t hvi_os_write_nosigpipe(int fd, const void *p, size_t n);

/* --- guest-memory files --- */

/* Memory for a guest region of len bytes: a shareable file mapping
 * (memfd; huge: on huge pages), or private anonymous memory when
 * mergeable (same-page merging works on those only). *fd is -1 for the
 * latter. Nothing is left allocated on failure. */
int hvi_os_memory_map(uint64_t len, bool huge, bool mergeable, const char *what,
                      void **hva, int *fd);
void hvi_os_memory_unmap(void *hva, uint64_t len, int fd);
/* Advice: transparent huge pages (thp) and same-page merging on or off. */
int hvi_os_memory_advise(void *hva, uint64_t len, bool thp, bool mergeable,
                         const char *what);
/* Allocates every page now. */
int hvi_os_memory_prefault(void *hva, uint64_t len, const char *what);

/* --- finding the guest memory that holds data, without touching it ---
 *
 * A walk over one region's host memory [hva, hva+len) answers where data
 * may be, so that a save skips the rest without reading it (reading an
 * untouched page of a memfd allocates it). It never faults a page in.
 * Outside the extents it reports, every page reads as zero; inside, pages
 * may still be zero. Where the host cannot tell (an unknown kind of
 * mapping, no page map), the whole rest is one extent: slow, never wrong.
 */
typedef struct hvi_os_memory_walk hvi_os_memory_walk;

/* fd: the region's memory file (SEEK_DATA/SEEK_HOLE), or -1 for memory
 * the caller mapped (private anonymous memory is asked for resident and
 * swapped pages; any other kind is all data). */
int hvi_os_memory_walk_open(const void *hva, uint64_t len, int fd,
                            hvi_os_memory_walk **out);
/* The first extent [*start, *end) at or after byte off (page-aligned, all
 * within len) that may hold data; *start == *end == len when the rest
 * reads as zero. */
int hvi_os_guest_memory_next_data(hvi_os_memory_walk *w, uint64_t off,
                                  uint64_t *start, uint64_t *end);
void hvi_os_memory_walk_close(hvi_os_memory_walk *w);
/* Gives back the pages of [hva+off, +len) (page-aligned), which then read
 * as zero: punched out of the memory file fd, or dropped from private
 * anonymous memory when fd is -1. For a region's own memory only. */
int hvi_os_memory_discard(void *hva, uint64_t off, uint64_t len, int fd);

/* --- which frames guest pages sit on (the sharing audit, audit.c) --- */

/* Page counts of a scan; hvi_os_frames_scan() adds to them. The sharing
 * counts are exclusive: zero, then ksm, then mapped. */
struct hvi_os_sharing {
    uint64_t pages, resident, swapped, not_resident;
    uint64_t ksm, mapped, zero;
};

typedef struct hvi_os_frames hvi_os_frames;

/* Opens what the scan reads. Without the privilege to read frame numbers
 * and their map counts: -EPERM with a message saying what is missing,
 * unless residency_only, in which case *no_frames is set and the scan
 * counts residency only. */
int hvi_os_frames_open(bool residency_only, hvi_os_frames **out,
                       bool *no_frames);
/* Counts the pages of this process's [hva, hva+len) into *acc. */
int hvi_os_frames_scan(hvi_os_frames *f, const void *hva, uint64_t len,
                       struct hvi_os_sharing *acc);
void hvi_os_frames_close(hvi_os_frames *f);

/* --- kicking a thread out of the guest --- */

/* The signal used when hvc_vm_options.kick_signal is 0. */
int hvi_os_kick_signal_default(void);
/* Whether sig may be a kick signal. */
bool hvi_os_kick_signal_usable(int sig);
/* Installs a handler for sig (a no-op, SA_RESTART) unless the application
 * handles it already, so that a blocking guest entry returns EINTR. */
int hvi_os_kick_install(int sig);

/* --- a wake-up for threads parked by a pause --- */

int hvi_os_wake_init(hvi_os_wake *w);
void hvi_os_wake_destroy(hvi_os_wake *w);
/* Async-signal-safe: may be called from a signal handler. */
void hvi_os_wake_post(hvi_os_wake *w);
/* Forgets posts made so far (the caller checks its condition after). */
void hvi_os_wake_drain(hvi_os_wake *w);
/* Waits for a post (or returns early: callers re-check their condition). */
void hvi_os_wake_wait(hvi_os_wake *w);

/* --- tap interfaces (virtio-net's back end) ---
 *
 * Descriptors are non-blocking and carry a 12-byte virtio-net header
 * (struct virtio_net_hdr_v1) before every frame, both ways. */

#define HVI_OS_TAP_NAME_MAX 16 /* with the NUL */
/* Offload bits for hvi_os_tap_set_offload(). */
#define HVI_OS_TAP_CSUM 1u
#define HVI_OS_TAP_TSO4 2u
#define HVI_OS_TAP_TSO6 4u
#define HVI_OS_TAP_TSO_ECN 8u

/* Opens the existing tap interface @name: -ENODEV when there is none,
 * -EBUSY when another descriptor holds it, -EPERM/-EACCES, -EINVAL when
 * it is no tap; the message names it. */
int hvi_os_tap_open(const char *name, int *fd);
/* Checks that @fd is a tap with a virtio-net header, sets its header size
 * and makes it non-blocking; @name receives the interface's name. */
int hvi_os_tap_adopt(int fd, char name[HVI_OS_TAP_NAME_MAX]);
/* Which offloaded packets the tap may hand us (HVI_OS_TAP_* bits). */
int hvi_os_tap_set_offload(int fd, unsigned bits);
/* One packet (header included) each: the byte count, -EAGAIN when none
 * can move now, or another negative errno. */
long hvi_os_tap_read(int fd, void *buf, size_t len);
long hvi_os_tap_write(int fd, const void *buf, size_t len);

/* --- userfaultfd: guest memory whose missing pages another thread fills
 * (post-copy migration, src/migration/postcopy_recv.c) --- */

/* Opens a non-blocking userfaultfd for missing-page faults: the
 * userfaultfd system call, or /dev/userfaultfd where the system call is
 * refused to this process (vm.unprivileged_userfaultfd = 0 without
 * CAP_SYS_PTRACE). -ENOTSUP when the host has neither. */
int hvi_os_uffd_open(int *fd);
/* Registers [hva, hva+len) (page-aligned) for missing-page faults. */
int hvi_os_uffd_register(int fd, void *hva, uint64_t len);
/* Unregisters it: threads waiting on a fault there are woken and fault
 * again normally. */
int hvi_os_uffd_unregister(int fd, void *hva, uint64_t len);
/* Places len bytes from src at dst (page-aligned, missing pages) and
 * wakes their waiters; -EEXIST when a page is present already (nothing of
 * that page is changed). zero: src is ignored, the pages read as zero. */
int hvi_os_uffd_fill(int fd, void *dst, const void *src, uint64_t len,
                     bool zero);
/* Wakes the threads waiting on a fault in [hva, hva+len). */
int hvi_os_uffd_wake(int fd, void *hva, uint64_t len);
/* Waits for a fault on fd or for stop_fd (a notifier) to be readable, up
 * to timeout_ms (-1: no limit). Returns 1 with *addr the faulting address
 * (and *write), 0 when stop_fd is readable or the time is up, or a
 * negative errno. */
int hvi_os_uffd_next(int fd, int stop_fd, int timeout_ms, uint64_t *addr,
                     bool *write);

#endif
