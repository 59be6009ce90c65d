/* vCPU threads for backends whose vCPUs are bound to the thread that
 * created them (HVC_BACKEND_VCPU_THREAD_BOUND): each vCPU gets a thread of
 * the library's own, its home, which creates the backend vCPU, runs it and
 * destroys it; every backend vCPU call made on another thread is queued
 * to the home and waited for. docs/BACKENDS.md gives the design.
 *
 * Where the home drains its queue: while idle (home_main), at the top of
 * every run-loop iteration, i.e. between exits and before re-entering the
 * guest (vcpu.c), and while parked by a pause, before it takes vm->lock
 * (vcpu.c: park, hvi_vcpu_lock_vm). A caller that queues work kicks the
 * runner out of the guest and posts its parked wake-up, then sleeps until
 * the work is done. */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hvi_fwd {
    int (*fn)(hvc_vcpu *v, void *arg);
    void *arg;
    int result;
    bool done;
    /* Where done is signalled: the caller's own (stack) pair, or, when the
     * caller is itself a vCPU's home, that home's lock and cond, so that
     * it keeps draining its own queue while it waits (two homes calling
     * each other's vCPUs from callbacks do not deadlock). */
    pthread_mutex_t *mx;
    pthread_cond_t *cv;
    char msg[512]; /* the home's hvc_last_error() when result < 0 */
    struct hvi_fwd *next;
};

struct hvi_vcpu_home {
    pthread_t thread;
    /* A leaf: held only around the queue, stop and the done flags of the
     * calls this home waits for; never while calling out. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* work queued, stop, or a call of ours done */
    struct hvi_fwd *head;
    struct hvi_fwd **tail;
    atomic_int pending; /* queued and not yet taken */
    bool stop;
};

/* The vCPU whose home this thread is, if any. */
static _Thread_local hvc_vcpu *home_of;

bool hvi_vcpu_on_home(const hvc_vcpu *v)
{
    return !v->home || home_of == v;
}

static void complete(struct hvi_fwd *w, int r)
{
    if (r < 0)
        snprintf(w->msg, sizeof(w->msg), "%s", hvc_last_error());
    pthread_mutex_lock(w->mx);
    w->result = r;
    w->done = true;
    pthread_cond_broadcast(w->cv);
    pthread_mutex_unlock(w->mx); /* the waiter may free w from here on */
}

static struct hvi_fwd *take(struct hvi_vcpu_home *h)
{
    struct hvi_fwd *w = h->head;
    if (w) {
        h->head = w->next;
        if (!h->head)
            h->tail = &h->head;
        atomic_fetch_sub(&h->pending, 1);
    }
    return w;
}

void hvi_vcpu_drain(hvc_vcpu *v)
{
    struct hvi_vcpu_home *h = v->home;
    if (!h || !atomic_load(&h->pending))
        return;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        struct hvi_fwd *w = take(h);
        pthread_mutex_unlock(&h->lock);
        if (!w)
            return;
        complete(w, w->fn(v, w->arg));
    }
}

void hvi_vcpu_lock_vm(hvc_vcpu *v)
{
    hvc_vm *vm = v->vm;
    if (!v->home || home_of != v) {
        pthread_mutex_lock(&vm->lock);
        return;
    }
    /* A thread holding vm->lock may be waiting for this home (a save
     * under vm->lock reads a parked vCPU): serve it while waiting. */
    unsigned spins = 0;
    while (pthread_mutex_trylock(&vm->lock) != 0) {
        hvi_vcpu_drain(v);
        if (++spins < 64) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}

int hvi_vcpu_call(hvc_vcpu *v, int (*fn)(hvc_vcpu *v, void *arg), void *arg)
{
    struct hvi_vcpu_home *h = v->home;
    if (!h || home_of == v)
        return fn(v, arg); /* not bound, or on its own thread: inline */
    hvc_vcpu *self = home_of;
    pthread_mutex_t lmx;
    pthread_cond_t lcv;
    struct hvi_fwd w = {.fn = fn, .arg = arg};
    if (self) {
        w.mx = &self->home->lock;
        w.cv = &self->home->cond;
    } else {
        pthread_mutex_init(&lmx, NULL);
        pthread_cond_init(&lcv, NULL);
        w.mx = &lmx;
        w.cv = &lcv;
    }
    pthread_mutex_lock(&h->lock);
    bool stopped = h->stop;
    if (!stopped) {
        *h->tail = &w;
        h->tail = &w.next;
        atomic_fetch_add(&h->pending, 1);
        pthread_cond_broadcast(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
    if (stopped) {
        if (!self) {
            pthread_mutex_destroy(&lmx);
            pthread_cond_destroy(&lcv);
        }
        return hvi_error(-ENODEV, "vCPU %u is being destroyed", v->id);
    }
    /* Out of the guest, or out of a pause, to the nearest drain. */
    hvi_vcpu_interrupt(v);
    hvi_os_wake_post(&v->parked);
    pthread_mutex_lock(w.mx);
    while (!w.done) {
        if (self && atomic_load(&self->home->pending)) {
            pthread_mutex_unlock(w.mx);
            hvi_vcpu_drain(self);
            pthread_mutex_lock(w.mx);
            continue;
        }
        pthread_cond_wait(w.cv, w.mx);
    }
    pthread_mutex_unlock(w.mx);
    if (!self) {
        pthread_mutex_destroy(&lmx);
        pthread_cond_destroy(&lcv);
    }
    if (w.result < 0)
        return hvi_error(w.result, "%s", w.msg);
    return w.result;
}

static void *home_main(void *arg)
{
    hvc_vcpu *v = arg;
    struct hvi_vcpu_home *h = v->home;
    home_of = v;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        struct hvi_fwd *w = take(h);
        if (w) {
            pthread_mutex_unlock(&h->lock);
            complete(w, w->fn(v, w->arg));
            pthread_mutex_lock(&h->lock);
            continue;
        }
        if (h->stop)
            break;
        pthread_cond_wait(&h->cond, &h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int hvi_vcpu_home_start(hvc_vcpu *v)
{
    struct hvi_vcpu_home *h = calloc(1, sizeof(*h));
    if (!h)
        return hvi_error(-ENOMEM, "out of memory starting vCPU %u's thread",
                         v->id);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->tail = &h->head;
    atomic_init(&h->pending, 0);
    v->home = h;
    /* The home takes no process signal: the backend unblocks its own kick
     * (if it uses one) around guest entry, as on any runner. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&h->thread, NULL, home_main, v);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        v->home = NULL;
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return hvi_error(-e, "vCPU %u: cannot start its thread: %s", v->id,
                         strerror(e));
    }
    return 0;
}

void hvi_vcpu_home_stop(hvc_vcpu *v)
{
    struct hvi_vcpu_home *h = v->home;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    v->home = NULL;
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
