/*
 * utf8.h - UTF-8 validation.
 *
 * Valid UTF-8 here is RFC 3629 / Unicode Table 3-7: the shortest encoding
 * only (no overlongs such as C0 80 or E0 80 80), no UTF-16 surrogates
 * (U+D800..U+DFFF, i.e. ED A0..BF xx), nothing above U+10FFFF (F4 90+ and
 * F5..FF). The bytes C0, C1 and F5..FF never occur.
 */
#ifndef GM_UTF8_H
#define GM_UTF8_H

#include "gm_internal.h"

/*
 * True when s[0..n) is valid UTF-8. On failure *bad_offset (if not NULL)
 * is the offset of the first byte of the first invalid sequence (for a
 * sequence cut short by the end of the input: the offset of its lead byte).
 * s may be NULL when n == 0.
 */
GM_INTERNAL bool gm_utf8_valid(const char *s, size_t n, size_t *bad_offset);

#endif /* GM_UTF8_H */
