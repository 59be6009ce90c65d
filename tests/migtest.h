/* Helpers for the migration suites: a VM running tests/guests/counter64.S
 * with a UART whose output is captured, saved and restored through files,
 * memory buffers and descriptors. Functions that a forked child calls
 * return an error instead of asserting. */
#ifndef MIGTEST_H
#define MIGTEST_H

#include "hvtest.h"

#include <pthread.h>

#define MIGT_MAX_VCPUS 4
#define MIGT_STATE (DATA_OUT + 0x100)
#define MIGT_PATTERN 0x200000u
#define MIGT_NPAGES 32

typedef struct migt {
    hvc_hypervisor *hv;
    hvc_vm *vm;
    uint32_t nr_vcpus;
    hvc_vcpu *vcpu[MIGT_MAX_VCPUS];
    char console[1 << 16];
    size_t console_len;
    /* CLOCK_MONOTONIC (one clock for every process) of the first and the
     * last console output: a live migration's pause as the console saw
     * it. */
    uint64_t first_out_ns, last_out_ns;
    /* A destination in another process (tests/migt_remote.h): its pid
     * (0 when the VM is here) and request socket. vm and vcpu are NULL
     * then; use the migt_ calls, which all work on either. */
    int remote_pid, remote_fd;
    /* migt_handover_receive_blk(): the disk descriptor the new VM was
     * handed (closed by migt_close() after the VM), when has_blk_fd. */
    int blk_fd, has_blk_fd;
} migt;

/* VMs this process holds: migtest counts its own (migt_open, the
 * restores); a test that holds a VM made otherwise adds it while it does,
 * so that the destinations that need a process of their own get one. */
extern int migt_local_vms;

/* A new VM with @p nr_vcpus vCPUs in long mode at the counter guest, and
 * a UART named "com1" (asserts). @p hv: an open hypervisor, or NULL. */
void migt_open(migt *m, uint32_t nr_vcpus, hvc_hypervisor *hv);
/* The same with hvc_vm_options::max_vcpus (0: the backend's limit), for a
 * stream another backend with a lower limit restores. */
void migt_open_max(migt *m, uint32_t nr_vcpus, hvc_hypervisor *hv,
                   uint32_t max_vcpus);
void migt_close(migt *m);
/* Runs every vCPU until its count reaches @p n; 0, or a code. */
int migt_run_until(migt *m, uint64_t n);
/* Count, pattern errors and backward TSC steps of vCPU @p i. */
uint64_t migt_count(migt *m, uint32_t i);
/* Checks every vCPU: count @p n, pattern of count n in place, no pattern
 * error, no backward TSC step; 0 or 1 (with a line on stderr). */
int migt_check(migt *m, uint64_t n);
/* The console holds exactly "count from" .. "count to" (asserts). */
void migt_assert_console(migt *m, uint64_t from, uint64_t to);

/* Pause, save, resume. */
int migt_save_file(migt *m, const char *path);
uint8_t *migt_save_mem(migt *m, const uint8_t *key, const char *pass,
                       size_t *len);
/* Restores (with the UART re-attached and captured into @p m). */
int migt_restore_file(migt *m, const char *path, uint32_t flags);
int migt_restore_fd(migt *m, int fd, const uint8_t *key);
/* hvc_vm_migrate_receive() from @p fd, with the UART re-attached. */
int migt_receive_fd(migt *m, int fd, const uint8_t *key, const char *pass);
/* The same over TLS (@p tls NULL: none), with the stream key @p key. */
int migt_receive_tls(migt *m, int fd, const hvc_migrate_tls *tls,
                     const uint8_t *key);
/* The same, with the extra connections of a parallel migration accepted
 * on @p listen_fd. */
int migt_receive_par(migt *m, int fd, int listen_fd,
                     const hvc_migrate_tls *tls, const uint8_t *key);
/* hvc_vm_handover_receive() from @p fd, with the UART re-attached. */
int migt_handover_receive(migt *m, int fd);
/* The same for a VM whose device is a virtio-blk (MMIO at @p base, @p irq,
 * serial @p serial) on the disk descriptor handed over as "virtio-blk0"
 * (taken once: a second take must be refused), instead of the UART.
 * *disk_ino: the inode of the descriptor the new VM got. */
int migt_handover_receive_blk(migt *m, int fd, uint64_t base, uint32_t irq,
                              const char *serial, uint64_t *disk_ino);
int migt_restore_mem(migt *m, const uint8_t *buf, size_t len,
                     const uint8_t *key, const char *pass);
/* Restores into a VM nobody runs (UART without output); for the hostile
 * stream tests. */
int migt_restore_mem_vm(hvc_hypervisor *hv, const uint8_t *buf, size_t len,
                        const uint8_t *key, const char *pass, hvc_vm **out);
/* hvc_last_error(), or the remote destination's message when the last
 * migt_ call on this thread went to one and failed (read it before other
 * hvc_ calls). */
const char *migt_last_error(void);
/* HVT_OK for migt_ calls: the message is migt_last_error(). */
#define MIGT_OK(call)                                                          \
    do {                                                                       \
        int migt_r_ = (call);                                                  \
        cr_assert_eq(migt_r_, 0, "%s = %d (%s): %s", #call, migt_r_,           \
                     hvc_strerror(migt_r_), migt_last_error());                \
    } while (0)
/* HVT_ERR for migt_ calls. */
#define MIGT_ERR(call, err)                                                    \
    do {                                                                       \
        int migt_r_ = (call);                                                  \
        cr_assert_eq(migt_r_, (err), "%s = %d, expected %d (%s)", #call,       \
                     migt_r_, (err), migt_last_error());                       \
        cr_assert_neq(migt_last_error()[0], '\0', "%s: no message", #call);    \
    } while (0)
/* Destinations (restores, receives) run in another process on backend
 * @p name (NULL: back to the default: a remote on the same backend only
 * when it allows one VM per process and this process holds a migt VM
 * already; $HVT_REMOTE_BACKEND sets it too). */
void migt_remote_backend(const char *name);
/* FNV-1a of the guest RAM of @p m (migt_ram_hash()), here or remote. */
uint64_t migt_hash(migt *m);
/* Register @p id of vCPU @p i into *v; 0 or -errno. */
int migt_reg(migt *m, uint32_t i, hvc_reg id, uint64_t *v);
/* hvc_vm_handover_receive() (@p handover) or hvc_vm_migrate_receive()
 * from @p fd into a VM nobody runs (UART without output), for the
 * refusal tests; in a remote destination when one is due, where a VM that
 * was received is destroyed (*out NULL, 0). Read migt_last_error(). */
int migt_receive_vm(hvc_hypervisor *hv, int fd, int handover, hvc_vm **out);
/* Reads guest memory; 0 or -errno. */
int migt_read(migt *m, uint64_t gpa, void *p, size_t n);

/* CRC32C computed bitwise, independently of the library. */
uint32_t migt_crc32c(uint32_t crc, const void *p, size_t n);
/* A progress callback that always stops the operation (-ECANCELED). */
int migt_stop_progress(void *opaque, uint64_t done, uint64_t total);

/* The VM's vCPUs, each run on a thread of its own until
 * migt_stop_runners() (which asserts no run failed). */
typedef struct migt_runner {
    hvc_vcpu *vcpu;
    _Atomic int stop;
    int error;
    pthread_t t;
} migt_runner;
void migt_start_runners(migt *m, migt_runner *r);
void migt_stop_runners(migt *m, migt_runner *r);
/* FNV-1a of all of the VM's guest RAM, region by region. */
uint64_t migt_ram_hash(hvc_vm *vm);
void migt_sleep_ms(unsigned ms);
/* Writes all of @p n bytes (stops quietly at an error or EOF). */
void migt_write_all(int fd, const void *p, size_t n);
/* Reads until @p cap bytes, EOF or an error; returns what it got. */
size_t migt_read_all(int fd, void *p, size_t cap);
/* Waits (up to 10 s) until every vCPU counted to @p n (asserts). */
void migt_wait_counting(migt *m, uint64_t n);
/* Asserts that vCPU 0 counts on within 10 s (a loaded host may not
 * schedule it for a while): the VM runs; @p who names it. */
void migt_assert_counts_on(migt *m, const char *who);

/* A throwaway CA, a second CA nobody trusts, and certificates for the
 * destination (localhost, 127.0.0.1) and the source, signed by the
 * first, in a fresh directory (made with the openssl command; asserts). */
typedef struct migt_certs {
    char dir[64];
    char ca[96], other_ca[96], srv[96], srv_key[96], cli[96], cli_key[96];
} migt_certs;

void migt_make_certs(migt_certs *c);
void migt_drop_certs(migt_certs *c);
/* Both sides' TLS options from @p c: the destination's certificate and
 * key, the source trusting the CA; @p mutual: the destination asks for
 * the source's certificate too, and the source checks the name
 * 127.0.0.1. */
void migt_tls_options(const migt_certs *c, bool mutual, hvc_migrate_tls *src,
                      hvc_migrate_tls *dst);
/* A socket listening on 127.0.0.1, a free port, and its address
 * ("tcp:127.0.0.1:PORT") in @p addr (asserts). */
int migt_listen_tcp(char *addr, size_t len);

#endif
