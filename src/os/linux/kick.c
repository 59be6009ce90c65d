/* The kick signal: a real-time signal sent to a vCPU thread so that a
 * blocking guest entry returns. */
#include "os_internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

int hvi_os_kick_signal_default(void)
{
    return SIGRTMIN;
}

bool hvi_os_kick_signal_usable(int sig)
{
    return sig >= 1 && sig <= SIGRTMAX && sig != SIGKILL && sig != SIGSTOP;
}

static void kick_handler(int sig)
{
    (void)sig; /* only there to interrupt the guest entry */
}

/* A blocking call returns EINTR for a signal that is neither ignored nor
 * left at a default that kills the process: install a no-op handler unless
 * the application already handles this signal. SA_RESTART, so a kick that
 * lands outside the guest does not fail the caller's own system calls. */
int hvi_os_kick_install(int sig)
{
    struct sigaction old;
    if (sigaction(sig, NULL, &old) < 0)
        return hvi_error(-errno, "kick signal %d: %s", sig,
                         hvc_strerror(-errno));
    if (!(old.sa_flags & SA_SIGINFO) &&
        (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = kick_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) < 0)
            return hvi_error(-errno,
                             "installing the kick signal %d handler: %s", sig,
                             hvc_strerror(-errno));
    }
    return 0;
}
