/* utf8.c - UTF-8 validation (Unicode Table 3-7) and streaming boundaries. */
#include "utf8.h"

static bool is_cont(unsigned char b) { return (b & 0xC0) == 0x80; }

/* Total length of the sequence a lead byte starts: 1..4, or 0 for bytes that
 * can never start one (continuations 80..BF, C0, C1, F5..FF). */
static int lead_len(unsigned char b) {
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return 2;
    if (b < 0xF0) return 3;
    if (b < 0xF5) return 4;
    return 0;
}

/* The second byte's range depends on the lead: this is what rules out
 * overlongs (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code
 * points above U+10FFFF (F4 90..BF). */
static bool second_ok(unsigned char lead, unsigned char b) {
    switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return is_cont(b);
    }
}

/* True when the `have` bytes at p (have >= 1, p[0] a lead of length
 * lead_len(p[0]) >= 2) are a valid start of their sequence. */
static bool prefix_ok(const unsigned char *p, size_t have) {
    if (have >= 2 && !second_ok(p[0], p[1])) return false;
    for (size_t k = 2; k < have; k++)
        if (!is_cont(p[k])) return false;
    return true;
}

/* Skips a run of ASCII 8 bytes at a time; returns the new offset. */
static size_t skip_ascii(const unsigned char *s, size_t i, size_t n) {
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & UINT64_C(0x8080808080808080)) break;
        i += 8;
    }
    while (i < n && s[i] < 0x80) i++;
    return i;
}

bool gm_utf8_valid(const char *str, size_t n, size_t *bad_offset) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while ((i = skip_ascii(s, i, n)) < n) {
        int len = lead_len(s[i]);
        if (len == 0 || (size_t)len > n - i || !prefix_ok(s + i, (size_t)len)) {
            if (bad_offset) *bad_offset = i;
            return false;
        }
        i += (size_t)len;
    }
    return true;
}
