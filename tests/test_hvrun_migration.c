/* examples/hvrun's live migration, end to end: --migrate-to and
 * --incoming between two hvrun processes. The guest is
 * tests/guests/counter64.S (see test_hvrun_snapshot.c). */
#include "hvrun_util.h"
#include "migtest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HVT_HVRUN /* built with the examples */

/* A hang fails the test instead of blocking the suite. */
TestSuite(hvrun_snapshot, .timeout = 240);

/* --migrate-to and --incoming: the counter guest moves to a second hvrun,
 * whose console goes on with the next number; the source exits 0 after
 * one line with the downtime. A destination that is not there leaves the
 * source counting, after one line. */
Test(hvrun_snapshot, live_migration)
{
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "mig.sock");
    char ser_dst[160], ser_src[160], ser_lone[160];
    snprintf(ser_dst, sizeof(ser_dst), "file:%s", in(&s, "dst.txt"));
    snprintf(ser_src, sizeof(ser_src), "file:%s", in(&s, "src.txt"));
    snprintf(ser_lone, sizeof(ser_lone), "file:%s", in(&s, "lone.txt"));
    char to[160];
    snprintf(to, sizeof(to), "unix:%s", sock);
    const char *dst[] = {"--incoming", to, "--serial", ser_dst, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    for (double end = now() + WAIT_S; access(sock, F_OK) != 0;) {
        cr_assert(now() < end, "--incoming never listened");
        usleep(10000);
    }
    const char *src[] = {"--kernel",
                         COUNTER,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--serial",
                         ser_src,
                         "--migrate-to",
                         to,
                         "--migrate-after-ms",
                         "100",
                         "--max-downtime-ms",
                         "5",
                         NULL};
    cr_assert_eq(run_hvrun(&s, "src", src), 0);
    char *err = output(&s, "src", "err");
    assert_one_line(err, "downtime");
    fprintf(stderr, "hvrun %s", err);
    free(err);
    char *text = slurp(in(&s, "src.txt"), NULL);
    const char *tail;
    long last = last_count(text, &tail);
    cr_assert_gt(last, 0);
    assert_consecutive(text, 1);
    free(text);
    wait_for_count(in(&s, "dst.txt"), last + 20, WAIT_S, d);
    kill(d, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 130);
    /* The source's last line, cut or not, goes on on the destination. */
    char *src_text = slurp(in(&s, "src.txt"), NULL);
    char *dst_text = slurp(in(&s, "dst.txt"), NULL);
    char *all = malloc(strlen(src_text) + strlen(dst_text) + 1);
    cr_assert_not_null(all);
    strcpy(all, src_text);
    strcat(all, dst_text);
    cr_assert_geq(assert_consecutive(all, 1), last + 20);
    free(all);
    free(src_text);
    free(dst_text);

    /* Nobody listens: one line, and the guest counts on. */
    const char *lone[] = {"--kernel",     COUNTER, "--raw",    "0x8000",
                          "--mem",        "64",    "--serial", ser_lone,
                          "--migrate-to", to,      NULL};
    pid_t l = spawn_hvrun(&s, "lone", NULL, lone);
    wait_for_count(in(&s, "lone.txt"), 10, WAIT_S, l);
    kill(l, SIGUSR2); /* no --migrate-after-ms: the signal starts it */
    for (double end = now() + WAIT_S;;) {
        err = output(&s, "lone", "err");
        bool said = strchr(err, '\n') != NULL;
        free(err);
        if (said)
            break;
        cr_assert(now() < end, "no line after SIGUSR2");
        usleep(10000);
    }
    err = output(&s, "lone", "err");
    assert_one_line(err, "the VM runs on");
    free(err);
    text = slurp(in(&s, "lone.txt"), NULL);
    long before = last_count(text, NULL);
    free(text);
    wait_for_count(in(&s, "lone.txt"), before + 10, WAIT_S, l);
    kill(l, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(l, WAIT_S)), 130);
    scratch_close(&s);
}

/* --postcopy-after-rounds 1: the guest runs on the destination right
 * after the first pass, the rest of memory follows; the source exits 0
 * after one line with the post-copy figures, the destination prints one
 * line when every page arrived, and counts on. */
Test(hvrun_snapshot, postcopy_migration)
{
    struct scratch s;
    scratch_open(&s);
    const char *sock = in(&s, "pc.sock");
    char ser_dst[160], ser_src[160], to[160];
    snprintf(ser_dst, sizeof(ser_dst), "file:%s", in(&s, "dst.txt"));
    snprintf(ser_src, sizeof(ser_src), "file:%s", in(&s, "src.txt"));
    snprintf(to, sizeof(to), "unix:%s", sock);
    const char *dst[] = {"--incoming", to, "--serial", ser_dst, NULL};
    pid_t d = spawn_hvrun(&s, "dst", NULL, dst);
    for (double end = now() + WAIT_S; access(sock, F_OK) != 0;) {
        cr_assert(now() < end, "--incoming never listened");
        usleep(10000);
    }
    const char *src[] = {"--kernel",
                         COUNTER,
                         "--raw",
                         "0x8000",
                         "--mem",
                         "64",
                         "--serial",
                         ser_src,
                         "--migrate-to",
                         to,
                         "--migrate-after-ms",
                         "100",
                         "--postcopy-after-rounds",
                         "1",
                         NULL};
    cr_assert_eq(run_hvrun(&s, "src", src), 0);
    char *err = output(&s, "src", "err");
    assert_one_line(err, "by post-copy");
    fprintf(stderr, "hvrun %s", err);
    free(err);
    char *text = slurp(in(&s, "src.txt"), NULL);
    long last = last_count(text, NULL);
    cr_assert_gt(last, 0);
    free(text);
    wait_for_count(in(&s, "dst.txt"), last + 20, WAIT_S, d);
    for (double end = now() + WAIT_S;;) {
        err = output(&s, "dst", "err");
        bool said = strstr(err, "post-copy complete") != NULL;
        if (said)
            fprintf(stderr, "hvrun %s", err);
        free(err);
        if (said)
            break;
        cr_assert(now() < end, "the destination never said post-copy ended");
        usleep(10000);
    }
    kill(d, SIGTERM);
    cr_assert_eq(WEXITSTATUS(wait_exit(d, WAIT_S)), 130);
    char *src_text = slurp(in(&s, "src.txt"), NULL);
    char *dst_text = slurp(in(&s, "dst.txt"), NULL);
    char *all = malloc(strlen(src_text) + strlen(dst_text) + 1);
    cr_assert_not_null(all);
    strcpy(all, src_text);
    strcat(all, dst_text);
    cr_assert_geq(assert_consecutive(all, 1), last + 20);
    free(all);
    free(src_text);
    free(dst_text);
    /* Post-copy needs --migrate-to. */
    const char *bad[] = {"--kernel", COUNTER,      "--raw",
                         "0x8000",   "--postcopy", NULL};
    cr_assert_eq(run_hvrun(&s, "bad", bad), 2);
    err = output(&s, "bad", "err");
    assert_one_line(err, "--postcopy");
    free(err);
    scratch_close(&s);
}

#endif /* HVT_HVRUN */
