/* The remote destination of tests/migtest.h: a migt whose VM lives in
 * another process, for backends that allow one VM per process.
 *
 * Why. Hypervisor.framework (and the hvf backend on tests/hvf_host) lets a
 * process hold ONE VM (HVC_CAP_MAX_VMS = 1). The migration suites hold a
 * source and a destination at once, so under such a backend migtest runs
 * the destination side in a second process, as a real deployment would.
 *
 * When. migt_remote_wanted(): the backend's HVC_CAP_MAX_VMS is 1 (the
 * capability is asked, the backend's name never tested) and this process
 * holds a VM already (migt_local_vms: migtest's own, plus any a test
 * declares; a forked receiver that holds none keeps its VM here), or a
 * test asked for a destination on another backend (migt_remote_backend(),
 * or $HVT_REMOTE_BACKEND) — kvm here, hvf there. Never inside the remote
 * itself ($MIGT_REMOTE_SERVER set by tests/migt_remote_main.c).
 *
 * How. migtest's destination calls (migt_restore_file/fd/mem,
 * migt_receive_fd, migt_handover_receive[_blk], and the refusal tests'
 * migt_receive_vm, which starts a remote for one call, and
 * migt_restore_mem_vm, which keeps one per thread for all its calls) fork
 * and exec the helper
 * executable tests/migt_remote_main.c (MIGT_REMOTE, built with hvtest)
 * with the same environment, its end of a socketpair on descriptor 3. The
 * migt then has remote_pid > 0, no vm nor vcpu pointers, and every later
 * migt_ call on it (run_until, check, count, hash, reg, read, save_mem,
 * save_file, assert_console, close) is one request and one response on
 * that socket:
 *
 *   request:  struct migt_req, then req.len payload bytes (a path, a
 *             stream buffer); a stream descriptor or hand-over socket
 *             travels with the header as SCM_RIGHTS.
 *   response: struct migt_rsp, then err_len bytes of the remote's
 *             hvc_last_error() (when rc != 0), data_len bytes of data
 *             (memory read, saved stream), console_len bytes of console
 *             output the remote's UART wrote since the last response.
 *
 * The console bytes are appended to the local migt's console (with the
 * times they arrived), so tests read m.console as before. A failed
 * remote call's message is kept per thread for migt_last_error().
 *
 * Lifetime. The child sets PR_SET_PDEATHSIG(SIGKILL) before exec (and
 * exits if its parent already went), and a watchdog thread in it exits
 * when the socket's peer hangs up (the test process or thread died, or
 * closed it): a remote never outlives its test. migt_close() asks it to
 * close, waits up to 5 s, then kills and reaps it. The death signal
 * follows the THREAD that started the remote: start it (the destination
 * call) on a thread that lives as long as the destination is used, as
 * every suite does.
 *
 * Not remote: migt_receive_tls() and migt_receive_par() (no suite run
 * under a one-VM backend needs them yet). */
#ifndef MIGT_REMOTE_H
#define MIGT_REMOTE_H

#include "migtest.h"

#include <stddef.h>
#include <stdint.h>

enum migt_op {
    MIGT_OP_RESTORE_FILE = 1, /* payload: path; flags: restore flags */
    MIGT_OP_RESTORE_FD = 2,   /* fd; key */
    MIGT_OP_RECEIVE = 3,      /* fd; key, passphrase */
    MIGT_OP_HANDOVER = 4,     /* fd; flags MIGT_HANDOVER_BLK: a: MMIO
                                 base, b: irq, payload: serial; value:
                                 the disk's inode */
    MIGT_OP_RESTORE_MEM = 5,  /* payload: stream; key, passphrase */
    MIGT_OP_RUN_UNTIL = 6,    /* a: count */
    MIGT_OP_CHECK = 7,        /* a: count */
    MIGT_OP_COUNT = 8,        /* a: vCPU -> value */
    MIGT_OP_HASH = 9,         /* -> value */
    MIGT_OP_REG = 10,         /* a: vCPU, b: register id -> value */
    MIGT_OP_READ = 11,        /* a: guest address, b: length -> data */
    MIGT_OP_SAVE_MEM = 12,    /* key, passphrase -> data */
    MIGT_OP_SAVE_FILE = 13,   /* payload: path */
    MIGT_OP_CLOSE = 14,
    MIGT_OP_RESTORE_MEM_VM = 15, /* the hostile restore: rc and message */
    MIGT_OP_RECEIVE_VM = 16,     /* fd; flags 1: hand-over; rc, message */
};

#define MIGT_HANDOVER_BLK 1u
#define MIGT_KEY_SIZE 32
#define MIGT_PASS_MAX 128

struct migt_req {
    uint32_t op, flags;
    uint64_t a, b;
    uint8_t has_key, has_pass, has_fd, pad[5];
    uint8_t key[MIGT_KEY_SIZE];
    char pass[MIGT_PASS_MAX];
    uint64_t len;
};

struct migt_rsp {
    int32_t rc;
    uint32_t nr_vcpus;
    uint64_t value;
    uint64_t err_len, data_len, console_len;
};

/* Sends or receives all of @p n bytes (with @p fd as SCM_RIGHTS when it
 * is >= 0, on the first byte); 0, or -errno (-EPIPE at EOF). */
int migt_send_all(int sock, const void *p, size_t n, int fd);
int migt_recv_all(int sock, void *p, size_t n, int *fd);

/* The client side (tests/migt_remote.c), for tests/migtest.c. */
int migt_remote_wanted(void);
/* Starts the remote for @p m (memset by the caller); 0 or -errno with
 * migt_last_error() set. */
int migt_remote_start(migt *m);
/* One request: @p payload of q->len bytes, @p fd (or -1) passed along.
 * The response's data, when @p data is not NULL, is malloc'd into *data
 * (*dlen bytes); its value into *value. Returns the remote's rc (its
 * message kept for migt_last_error()), or -EPIPE when it went away. */
int migt_remote_call(migt *m, struct migt_req *q, const void *payload, int fd,
                     void **data, size_t *dlen, uint64_t *value);
void migt_remote_stop(migt *m);
/* migt_last_error()'s per-thread text: cleared, or set to @p text. */
void migt_remote_error_clear(void);
void migt_remote_error_set(const char *text);
/* Appends console bytes as migtest's capture callback does. */
void migt_console_append(migt *m, const void *data, size_t length);

#endif
