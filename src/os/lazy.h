/*
 * Libraries loaded on first use. libcrypto, libnuma, libpci and libelf each
 * serve one feature (encrypted streams, NUMA placement, the PCI list, ELF
 * kernels); linking them costs every process that loads libhvcore their
 * loading, relocation and constructors (libnuma reads sysfs and probes the
 * policy system calls), milliseconds of a VMM's start-up. A file that uses
 * one instead lists the symbols it calls, after including the library's
 * own header, as
 *
 *     #define HVI_CRYPTO_SYMS(X) X(EVP_sha256) X(RAND_bytes) ...
 *     HVI_LAZY_TABLE(crypto, HVI_CRYPTO_SYMS)
 *     #define EVP_sha256 HVI_LAZY_USE(crypto, EVP_sha256)
 *
 * and calls hvi_lazy_crypto() (0, or a negative errno with hvc_last_error()
 * naming the library) before the first call through the table. The
 * library is opened once per process with RTLD_LOCAL, its SONAME fixed at
 * build time (src/CMakeLists.txt), and never closed.
 */
#ifndef HVCORE_OS_LAZY_H
#define HVCORE_OS_LAZY_H

#include <stdatomic.h>
#include <stddef.h>

struct hvi_lazy {
    const char *soname;
    const char *const *names; /* symbols to resolve, in table order */
    void **slots;             /* where their addresses go */
    size_t count;
    atomic_int state; /* 0 not tried, 1 loaded, -errno failed */
};

/* Loads @l once (any thread); 0, or the negative errno of the first
 * failure, every time, with the message set each time. */
int hvi_os_lazy_load(struct hvi_lazy *l);

#define HVI_LAZY_SLOT(sym) void *sym;
#define HVI_LAZY_NAME(sym) #sym,
/* A table of the symbols LIST names and hvi_lazy_<lib>(), its loader.
 * Slots are void pointers (dlsym's type); HVI_LAZY_USE casts each back to
 * the type the library's header gives its symbol. */
#define HVI_LAZY_TABLE(lib, soname_, LIST)                                     \
    static struct {                                                            \
        LIST(HVI_LAZY_SLOT)                                                    \
    } hvi_lazy_slots_##lib;                                                    \
    static const char *const hvi_lazy_names_##lib[] = {LIST(HVI_LAZY_NAME)};   \
    static struct hvi_lazy hvi_lazy_##lib##_state = {                          \
        soname_, hvi_lazy_names_##lib, (void **)&hvi_lazy_slots_##lib,         \
        sizeof(hvi_lazy_names_##lib) / sizeof(hvi_lazy_names_##lib[0]), 0};    \
    static inline int hvi_lazy_##lib(void)                                     \
    {                                                                          \
        return hvi_os_lazy_load(&hvi_lazy_##lib##_state);                      \
    }
/* The symbol through the table: a function to call, or a variable. */
#define HVI_LAZY_USE(lib, sym) (*(__typeof__(&sym))hvi_lazy_slots_##lib.sym)

#endif
