/* Escaping of strings that come from outside (a stream, a guest, a file, a
 * caller's argument) before they enter a message, so that control bytes
 * and terminal escape sequences never reach an operator's terminal. */
#include "internal.h"

#include <errno.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char *hvi_quote(char *buf, size_t size, const char *s, size_t max_in)
{
    static const char ellipsis[] = "...";
    /* Callers pass it next to -errno and hvc_strerror(-errno). */
    int saved = errno;
    size_t o = 0;
    if (size < sizeof(ellipsis) + 4)
        return "";
    if (!s) {
        snprintf(buf, size, "(null)");
        return buf;
    }
    for (size_t i = 0; i < max_in && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        char one[5];
        size_t n;
        if (c == '"' || c == '\\') {
            one[0] = '\\';
            one[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(one, sizeof(one), "\\x%02x", c);
            n = 4;
        } else {
            one[0] = (char)c;
            n = 1;
        }
        /* Keep room for "..." and the terminator. */
        if (o + n + sizeof(ellipsis) > size) {
            memcpy(buf + o, ellipsis, sizeof(ellipsis));
            errno = saved;
            return buf;
        }
        memcpy(buf + o, one, n);
        o += n;
    }
    buf[o] = 0;
    errno = saved;
    return buf;
}
