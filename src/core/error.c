/* Error reporting and version queries. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[512];

int hvi_error(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return err;
}

const char *hvc_last_error(void)
{
    return last_error;
}

/* Our own texts rather than strerror(): strerror() may use a shared buffer,
 * and these must be thread-safe and the same under every libc. Indexed by
 * errno value; POSIX names first, then those only Linux has. Aliases
 * (EWOULDBLOCK, EDEADLOCK, EOPNOTSUPP) share their twin's entry where the
 * values are equal. */
static const char *const error_names[] = {
    [0] = "success",
    [EPERM] = "operation not permitted",
    [ENOENT] = "not found",
    [ESRCH] = "no such process",
    [EINTR] = "interrupted",
    [EIO] = "input/output error",
    [ENXIO] = "no such device or address",
    [E2BIG] = "argument list too long",
    [ENOEXEC] = "not an executable format",
    [EBADF] = "bad file descriptor",
    [ECHILD] = "no child process",
    [EAGAIN] = "try again",
    [ENOMEM] = "out of memory",
    [EACCES] = "permission denied",
    [EFAULT] = "address outside guest memory",
    [ENOTBLK] = "not a block device",
    [EBUSY] = "busy",
    [EEXIST] = "already exists or overlaps",
    [EXDEV] = "cross-device link",
    [ENODEV] = "no such device",
    [ENOTDIR] = "not a directory",
    [EISDIR] = "is a directory",
    [EINVAL] = "invalid argument",
    [ENFILE] = "too many open files in system",
    [EMFILE] = "too many open files",
    [ENOTTY] = "inappropriate ioctl for device",
    [ETXTBSY] = "text file busy",
    [EFBIG] = "file too large",
    [ENOSPC] = "no space left",
    [ESPIPE] = "illegal seek",
    [EROFS] = "read-only file system",
    [EMLINK] = "too many links",
    [EPIPE] = "broken pipe",
    [EDOM] = "argument out of domain",
    [ERANGE] = "value out of range",
    [EDEADLK] = "would deadlock",
    [ENAMETOOLONG] = "name too long",
    [ENOLCK] = "no locks available",
    [ENOSYS] = "not implemented",
    [ENOTEMPTY] = "directory not empty",
    [ELOOP] = "too many levels of symbolic links",
    [ENOMSG] = "no message of the desired type",
    [EIDRM] = "identifier removed",
    [ENOSTR] = "not a stream",
    [ENODATA] = "no more data (the input ends early)",
    [ETIME] = "timer expired",
    [ENOSR] = "out of stream resources",
    [EREMOTE] = "object is remote",
    [ENOLINK] = "link has been severed",
    [EPROTO] = "protocol error",
    [EMULTIHOP] = "multihop attempted",
    [EBADMSG] = "bad message",
    [EOVERFLOW] = "value too large",
    [EILSEQ] = "invalid byte sequence",
    [EUSERS] = "too many users",
    [ENOTSOCK] = "not a socket",
    [EDESTADDRREQ] = "destination address required",
    [EMSGSIZE] = "message too long",
    [EPROTOTYPE] = "wrong protocol type for socket",
    [ENOPROTOOPT] = "protocol option not available",
    [EPROTONOSUPPORT] = "protocol not supported",
    [ESOCKTNOSUPPORT] = "socket type not supported",
    [ENOTSUP] = "not supported",
#if EOPNOTSUPP != ENOTSUP
    [EOPNOTSUPP] = "operation not supported on socket",
#endif
    [EPFNOSUPPORT] = "protocol family not supported",
    [EAFNOSUPPORT] = "address family not supported",
    [EADDRINUSE] = "address in use",
    [EADDRNOTAVAIL] = "address not available",
    [ENETDOWN] = "network is down",
    [ENETUNREACH] = "network unreachable",
    [ENETRESET] = "connection reset by network",
    [ECONNABORTED] = "connection aborted",
    [ECONNRESET] = "connection reset by peer",
    [ENOBUFS] = "no buffer space available",
    [EISCONN] = "already connected",
    [ENOTCONN] = "not connected",
    [ESHUTDOWN] = "endpoint shut down",
    [ETOOMANYREFS] = "too many references",
    [ETIMEDOUT] = "timed out",
    [ECONNREFUSED] = "connection refused",
    [EHOSTDOWN] = "host is down",
    [EHOSTUNREACH] = "host unreachable",
    [EALREADY] = "already in progress",
    [EINPROGRESS] = "in progress",
    [ESTALE] = "stale file handle",
    [EDQUOT] = "disk quota exceeded",
    [ECANCELED] = "canceled",
    [EOWNERDEAD] = "previous owner died",
    [ENOTRECOVERABLE] = "state not recoverable",
#if defined(__linux__)
    [41] = "unused error number 41",
    [58] = "unused error number 58",
    [ECHRNG] = "channel number out of range",
    [EL2NSYNC] = "level 2 not synchronized",
    [EL3HLT] = "level 3 halted",
    [EL3RST] = "level 3 reset",
    [ELNRNG] = "link number out of range",
    [EUNATCH] = "protocol driver not attached",
    [ENOCSI] = "no CSI structure available",
    [EL2HLT] = "level 2 halted",
    [EBADE] = "invalid exchange",
    [EBADR] = "invalid request descriptor",
    [EXFULL] = "exchange full",
    [ENOANO] = "no anode",
    [EBADRQC] = "invalid request code",
    [EBADSLT] = "invalid slot",
    [EBFONT] = "bad font file format",
    [ENONET] = "machine is not on the network",
    [ENOPKG] = "package not installed",
    [EADV] = "advertise error",
    [ESRMNT] = "srmount error",
    [ECOMM] = "communication error on send",
    [EDOTDOT] = "RFS specific error",
    [ENOTUNIQ] = "name not unique on network",
    [EBADFD] = "file descriptor in bad state",
    [EREMCHG] = "remote address changed",
    [ELIBACC] = "cannot access a needed shared library",
    [ELIBBAD] = "corrupted shared library",
    [ELIBSCN] = ".lib section in a.out corrupted",
    [ELIBMAX] = "too many shared libraries",
    [ELIBEXEC] = "cannot exec a shared library directly",
    [ERESTART] = "interrupted call should be restarted",
    [ESTRPIPE] = "streams pipe error",
    [EUCLEAN] = "structure needs cleaning",
    [ENOTNAM] = "not a XENIX named type file",
    [ENAVAIL] = "no XENIX semaphores available",
    [EISNAM] = "is a named type file",
    [EREMOTEIO] = "remote I/O error",
    [ENOMEDIUM] = "no medium found",
    [EMEDIUMTYPE] = "wrong medium type",
    [ENOKEY] = "required key not available",
    [EKEYEXPIRED] = "key has expired",
    [EKEYREVOKED] = "key has been revoked",
    [EKEYREJECTED] = "key rejected",
    [ERFKILL] = "blocked by rf-kill",
    [EHWPOISON] = "memory page has hardware error",
#endif
};

const char *hvc_strerror(int err)
{
    /* -INT_MIN overflows; it is no errno anyway. */
    unsigned e = err < 0 ? 0u - (unsigned)err : (unsigned)err;
    if (e < sizeof(error_names) / sizeof(error_names[0]) && error_names[e])
        return error_names[e];
    return "unknown error";
}

unsigned hvc_version(void)
{
    return HVC_VERSION_NUMBER;
}

const char *hvc_version_string(void)
{
#define HVI_STR2(x) #x
#define HVI_STR(x) HVI_STR2(x)
    return HVI_STR(HVC_VERSION_MAJOR) "." HVI_STR(
        HVC_VERSION_MINOR) "." HVI_STR(HVC_VERSION_PATCH);
}

int hvi_copy_options(void *dst, size_t dst_size, const void *src,
                     size_t min_size, const char *what)
{
    uint32_t size;
    memcpy(&size, src, sizeof(size));
    if (size < min_size || size > dst_size)
        return hvi_error(-EINVAL,
                         "%s size %u is not one this library knows (%zu..%zu)",
                         what, size, min_size, dst_size);
    memcpy(dst, src, size);
    return 0;
}
