/* userfaultfd (src/os/linux/uffd.c), white-box: a reader faulting its way
 * through registered memory while the memory is unregistered under it,
 * as post-copy does when its last page arrives and the guest (or the
 * caller) is still reading. Every fault must end: the reader finishes
 * each pass in well under a second. A fault taken under the per-VMA lock
 * can be on its way to the wait queue when UFFDIO_UNREGISTER wakes its
 * waiters; the unregister call wakes the range again afterwards. */
#include "os.h"

#include <hvcore/common.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define PAGES 2048u
#define PASSES 1000

struct pass {
    uint8_t *mem;
    int uffd, stop;
    sem_t done;
    atomic_uint_fast64_t sum;
};

static const uint8_t zero_page[PAGE];

/* Reads a byte of every page: each missing one faults. */
static void *reader(void *arg)
{
    struct pass *p = arg;
    uint64_t s = 0;
    for (unsigned i = 0; i < PAGES; i++)
        s += ((volatile uint8_t *)p->mem)[(size_t)i * PAGE];
    atomic_store(&p->sum, s);
    sem_post(&p->done);
    return NULL;
}

/* Serves faults as post-copy's fault thread does for pages never written
 * on the source: zeros, or a wake when the page cannot be placed. */
static void *server(void *arg)
{
    struct pass *p = arg;
    for (;;) {
        uint64_t addr;
        bool write;
        if (hvi_os_uffd_next(p->uffd, p->stop, -1, &addr, &write) <= 0)
            return NULL;
        void *page = (void *)(uintptr_t)(addr & ~(uint64_t)(PAGE - 1));
        if (hvi_os_uffd_fill(p->uffd, page, zero_page, PAGE, false) < 0)
            hvi_os_uffd_wake(p->uffd, page, PAGE);
    }
}

Test(uffd_unregister, wakes_every_fault_under_way)
{
    int mfd = memfd_create("uffd_unregister", MFD_CLOEXEC);
    cr_assert_geq(mfd, 0);
    cr_assert_eq(ftruncate(mfd, (off_t)PAGES * PAGE), 0);
    uint8_t *mem = mmap(NULL, (size_t)PAGES * PAGE, PROT_READ | PROT_WRITE,
                        MAP_SHARED, mfd, 0);
    cr_assert_neq(mem, MAP_FAILED);
    struct pass p = {.mem = mem};
    cr_assert_eq(hvi_os_uffd_open(&p.uffd), 0, "userfaultfd: %s",
                 hvc_last_error());
    cr_assert_eq(hvi_os_notifier_create(&p.stop), 0);
    unsigned seed = (unsigned)time(NULL);
    unsigned stuck = 0;
    for (int pass = 0; pass < PASSES && !stuck; pass++) {
        /* every page missing again */
        cr_assert_eq(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               0, (off_t)PAGES * PAGE),
                     0);
        cr_assert_eq(hvi_os_uffd_register(p.uffd, mem, (uint64_t)PAGES * PAGE),
                     0);
        hvi_os_notifier_drain(p.stop);
        sem_init(&p.done, 0, 0);
        pthread_t rt, st;
        cr_assert_eq(pthread_create(&st, NULL, server, &p), 0);
        cr_assert_eq(pthread_create(&rt, NULL, reader, &p), 0);
        /* unregister somewhere in the reader's pass */
        struct timespec d = {0, (long)(rand_r(&seed) % 3000u) * 1000L};
        nanosleep(&d, NULL);
        cr_assert_eq(
            hvi_os_uffd_unregister(p.uffd, mem, (uint64_t)PAGES * PAGE), 0);
        hvi_os_notifier_signal(p.stop);
        pthread_join(st, NULL);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        if (sem_timedwait(&p.done, &until) != 0) {
            stuck = (unsigned)pass + 1;
            /* closing the userfaultfd wakes it, so the thread can end */
            close(p.uffd);
            p.uffd = -1;
        }
        pthread_join(rt, NULL);
        sem_destroy(&p.done);
        cr_assert_eq(atomic_load(&p.sum), 0, "a page did not read as zero");
    }
    cr_assert_eq(stuck, 0,
                 "pass %u: a fault taken while the memory was unregistered "
                 "never ended (the reader slept 5 s)",
                 stuck);
    if (p.uffd >= 0)
        close(p.uffd);
    hvi_os_notifier_close(p.stop);
    munmap(mem, (size_t)PAGES * PAGE);
    close(mfd);
}
