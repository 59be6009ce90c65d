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

const char *hvc_strerror(int err)
{
    if (err < 0)
        err = -err;
    /* Our own table rather than strerror(): strerror() may use a shared
     * buffer, and this must be thread-safe and stable across libcs. */
    switch (err) {
    case 0: return "success";
    case EPERM: return "operation not permitted";
    case ENOENT: return "not found";
    case EINTR: return "interrupted";
    case EIO: return "input/output error";
    case ENXIO: return "no such device or address";
    case E2BIG: return "argument list too long";
    case EBADF: return "bad file descriptor";
    case EAGAIN: return "try again";
    case ENOMEM: return "out of memory";
    case EACCES: return "permission denied";
    case EFAULT: return "address outside guest memory";
    case EBUSY: return "busy";
    case EEXIST: return "already exists or overlaps";
    case ENODEV: return "no such device";
    case EINVAL: return "invalid argument";
    case ENFILE: return "too many open files in system";
    case EMFILE: return "too many open files";
    case EFBIG: return "file too large";
    case ENOSPC: return "no space left";
    case ERANGE: return "value out of range";
    case EDEADLK: return "would deadlock";
    case ENOSYS: return "not implemented";
    case EOVERFLOW: return "value too large";
    case ENOTSUP: return "not supported";
    case ETIMEDOUT: return "timed out";
    case ECANCELED: return "canceled";
    case EBADMSG: return "bad message";
    case EPROTO: return "protocol error";
    case ENODATA: return "no more data (the input ends early)";
    case EKEYREJECTED: return "key rejected";
    case EPIPE: return "broken pipe";
    default: return "unknown error";
    }
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
