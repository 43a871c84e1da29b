/*
 * utf8.h - UTF-8 validation and the streaming "complete prefix" helper.
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

/*
 * Length of the longest prefix of s[0..n) that does not end inside a
 * still-incomplete multi-byte sequence, i.e. the bytes safe to emit while
 * streaming. Invalid bytes count as complete (emitted as they are) so
 * garbage never stalls a stream; only a truncated-but-so-far-valid
 * sequence at the very end (at most 3 bytes) is held back. Returns a value
 * in [n - 3, n] (clamped at 0).
 */
GM_INTERNAL size_t gm_utf8_complete_len(const char *s, size_t n);

#endif /* GM_UTF8_H */
