/* The log hook (hvc_set_log): the only way the library says anything that
 * is not an error return. Silent until a caller installs a callback. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* Readers are threads delivering a message; the writer is hvc_set_log(),
 * which so waits until no thread is inside the old callback before it
 * returns and the caller may free the old opaque. */
static pthread_rwlock_t log_lock = PTHREAD_RWLOCK_INITIALIZER;
static hvc_log_fn log_fn;
static void *log_opaque;
/* The least severe level delivered, 0 when silent: read without the lock
 * so that a silent library pays one load per message it would log. */
static atomic_int log_level;
/* Set while this thread runs the callback. */
static _Thread_local bool in_callback;

int hvc_set_log(int level, hvc_log_fn fn, void *opaque)
{
    if (fn && (level < HVC_LOG_ERROR || level > HVC_LOG_DEBUG))
        return hvi_error(-EINVAL, "hvc_set_log: level %d is not %d..%d", level,
                         HVC_LOG_ERROR, HVC_LOG_DEBUG);
    if (in_callback)
        return hvi_error(-EDEADLK, "hvc_set_log: called from the log "
                                   "callback, which it would wait for");
    pthread_rwlock_wrlock(&log_lock);
    log_fn = fn;
    log_opaque = fn ? opaque : NULL;
    atomic_store(&log_level, fn ? level : 0);
    pthread_rwlock_unlock(&log_lock);
    return 0;
}

void hvi_log(int level, const char *fmt, ...)
{
    if (level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    if (in_callback)
        return;        /* the callback made the library log: no recursion */
    int saved = errno; /* callers may log between a failure and its errno */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_rwlock_rdlock(&log_lock);
    if (log_fn && level <= atomic_load(&log_level)) {
        in_callback = true;
        log_fn(log_opaque, level, msg);
        in_callback = false;
    }
    pthread_rwlock_unlock(&log_lock);
    errno = saved;
}
