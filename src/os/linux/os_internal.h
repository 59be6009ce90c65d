/* What the Linux host layer shares with the rest of the library: the OS
 * interface, the error helper and the log hook. */
#ifndef HVCORE_OS_LINUX_INTERNAL_H
#define HVCORE_OS_LINUX_INTERNAL_H

#include "../os.h"

#define HVI_PRINTF(a, b) __attribute__((format(printf, a, b)))
int hvi_error(int err, const char *fmt, ...) HVI_PRINTF(2, 3);
void hvi_log(int level, const char *fmt, ...) HVI_PRINTF(2, 3);

#endif
