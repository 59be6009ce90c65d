/* Libraries loaded on first use (src/os/lazy.h), with dlopen. */
#define _GNU_SOURCE
#include "../lazy.h"

#include "../../core/internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;

int hvi_os_lazy_load(struct hvi_lazy *l)
{
    int s = atomic_load_explicit(&l->state, memory_order_acquire);
    if (s == 1)
        return 0;
    pthread_mutex_lock(&lazy_lock);
    s = atomic_load_explicit(&l->state, memory_order_relaxed);
    if (s == 0) {
        void *h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
        const char *missing = NULL;
        for (size_t i = 0; h && i < l->count && !missing; i++) {
            l->slots[i] = dlsym(h, l->names[i]);
            if (!l->slots[i])
                missing = l->names[i];
        }
        if (!h || missing) {
            /* Kept open even when a symbol is missing: another thread may
             * not hold a slot, but dlclose buys nothing here. */
            s = -ENOTSUP;
        } else {
            s = 1;
        }
        if (s < 0)
            hvi_error(s, "%s cannot be loaded: %s", l->soname,
                      missing ? missing : dlerror());
        atomic_store_explicit(&l->state, s, memory_order_release);
        pthread_mutex_unlock(&lazy_lock);
        return s < 0 ? s : 0;
    }
    pthread_mutex_unlock(&lazy_lock);
    if (s < 0)
        return hvi_error(s, "%s cannot be loaded (see the first failure)",
                         l->soname);
    return 0;
}
