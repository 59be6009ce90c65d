/* Strings from outside (paths, flags, the library's messages, which may
 * quote a path) go through hvrun_esc() before they reach a message, so
 * that a file name cannot move the cursor, rewrite the terminal or forge a
 * second line: control characters, DEL, backslash, bytes that are not
 * UTF-8 and the C1 controls become escapes (\n, \t, \\, \xNN);
 * well-formed UTF-8 text stays readable. */
#include "hvrun.h"

#include <stdio.h>
#include <string.h>

#define SLOTS 8
#define SLOT_SIZE 4096

/* The length of the well-formed, printable UTF-8 sequence at @p (2..4),
 * or 0. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n = p[0] >= 0xf0 && p[0] <= 0xf4   ? 4
               : p[0] >= 0xe0                 ? 3
               : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
                                              : 0;
    if (p[0] >= 0xf5)
        n = 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
        return 0; /* U+0080..U+009F: C1 controls */
    if (n == 3 &&
        ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
        return 0; /* overlong, surrogates */
    if (n == 4 &&
        ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
        return 0;
    return n;
}

const char *hvrun_esc(const char *s)
{
    static _Thread_local char slots[SLOTS][SLOT_SIZE];
    static _Thread_local unsigned next;
    char *out = slots[next++ % SLOTS];
    if (!s)
        return "(null)";
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        char piece[8];
        size_t n = 1;
        switch (*p) {
        case '\n': memcpy(piece, "\\n", 3); break;
        case '\r': memcpy(piece, "\\r", 3); break;
        case '\t': memcpy(piece, "\\t", 3); break;
        case '\\': memcpy(piece, "\\\\", 3); break;
        default:
            if (*p >= 0x20 && *p < 0x7f) {
                piece[0] = (char)*p;
                piece[1] = 0;
            } else if (*p >= 0x80 && (n = utf8_len(p)) > 0) {
                memcpy(piece, p, n);
                piece[n] = 0;
            } else {
                n = 1;
                snprintf(piece, sizeof(piece), "\\x%02x", *p);
            }
        }
        size_t len = strlen(piece);
        if (k + len + 4 > SLOT_SIZE) {
            memcpy(out + k, "...", 4);
            return out;
        }
        memcpy(out + k, piece, len);
        k += len;
        p += n;
    }
    out[k] = 0;
    return out;
}
