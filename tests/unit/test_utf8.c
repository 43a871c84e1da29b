/* test_utf8.c - UTF-8 validation tables and streaming split points. */
#include "utf8.h"
#include "test_util.h"

typedef struct utf8_case {
    const char *bytes;
    size_t n;
    int valid;
    size_t bad; /* first byte of the first invalid sequence, when !valid */
    const char *what;
} utf8_case;

#define C(s, v, b, w) {s, sizeof(s) - 1, v, b, w}

static const utf8_case cases[] = {
    C("", 1, 0, "empty"),
    C("hello, world", 1, 0, "ascii"),
    C("0123456789abcdef0123456789abcdef\x7f", 1, 0, "long ascii run"),
    C("\xc2\x80", 1, 0, "U+0080"),
    C("\xdf\xbf", 1, 0, "U+07FF"),
    C("\xe0\xa0\x80", 1, 0, "U+0800"),
    C("\xed\x9f\xbf", 1, 0, "U+D7FF"),
    C("\xee\x80\x80", 1, 0, "U+E000"),
    C("\xef\xbf\xbf", 1, 0, "U+FFFF"),
    C("\xf0\x90\x80\x80", 1, 0, "U+10000"),
    C("\xf4\x8f\xbf\xbf", 1, 0, "U+10FFFF"),
    C("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 1, 0, "mixed 1-4 bytes"),
    C("\xc0\x80", 0, 0, "overlong NUL C0 80"),
    C("\xc1\xbf", 0, 0, "overlong C1 BF"),
    C("ab\xe0\x80\x80", 0, 2, "overlong E0 80 80"),
    C("\xe0\x9f\xbf", 0, 0, "overlong E0 9F BF"),
    C("\xf0\x80\x80\x80", 0, 0, "overlong F0 80 80 80"),
    C("\xf0\x8f\xbf\xbf", 0, 0, "overlong F0 8F BF BF"),
    C("x\xed\xa0\x80", 0, 1, "surrogate ED A0 80"),
    C("\xed\xbf\xbf", 0, 0, "surrogate ED BF BF"),
    C("\xf4\x90\x80\x80", 0, 0, "above U+10FFFF"),
    C("\xf5\x80\x80\x80", 0, 0, "F5 lead"),
    C("\xff", 0, 0, "FF"),
    C("abc\x80", 0, 3, "lone continuation"),
    C("\xc3\xa9\xbf", 0, 2, "extra continuation"),
    C("\xc3", 0, 0, "truncated 2-byte at end"),
    C("ok\xe2\x82", 0, 2, "truncated 3-byte at end"),
    C("ok\xf0\x9f\x98", 0, 2, "truncated 4-byte at end"),
    C("\xe2\x41\x42", 0, 0, "3-byte with ASCII inside"),
    C("\xc3\xa9\xc3", 0, 2, "valid then truncated"),
    C("0123456789\xc3(", 0, 10, "after the ASCII fast path"),
};

static void test_valid_table(void) {
    for (size_t i = 0; i < GM_ARRAY_LEN(cases); i++) {
        const utf8_case *c = &cases[i];
        size_t bad = 12345;
        bool ok = gm_utf8_valid(c->bytes, c->n, &bad);
        CHECK(ok == (c->valid != 0), "%s: valid=%d", c->what, ok);
        if (!c->valid) CHECK(bad == c->bad, "%s: bad offset %zu, want %zu", c->what, bad, c->bad);
        else CHECK(bad == 12345, "%s: bad_offset written on success", c->what);
        CHECK(gm_utf8_valid(c->bytes, c->n, NULL) == ok, "%s: NULL bad_offset", c->what);
    }
    CHECK(gm_utf8_valid(NULL, 0, NULL), "NULL, 0 is valid");
}

/* Independent reference: is b[0..n) exactly one valid encoded code point?
 * Decodes by the bit patterns, then rejects overlongs, surrogates and
 * values above U+10FFFF by arithmetic on the code point. */
static bool ref_one_char(const unsigned char *b, size_t n) {
    size_t len = b[0] < 0x80 ? 1 : (b[0] & 0xE0) == 0xC0 ? 2 : (b[0] & 0xF0) == 0xE0 ? 3
               : (b[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || len != n) return false;
    uint32_t cp = len == 1 ? b[0] : (uint32_t)(b[0] & (0x7F >> len));
    for (size_t k = 1; k < len; k++) {
        if ((b[k] & 0xC0) != 0x80) return false;
        cp = cp << 6 | (b[k] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    return cp >= min_cp[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

static void encode(uint32_t cp, unsigned char *b, size_t *n) {
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        *n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        *n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        *n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        *n = 4;
    }
}

static bool valid(const unsigned char *b, size_t n) {
    return gm_utf8_valid((const char *)b, n, NULL);
}

/* Every code point; every 1- and 2-byte string; every 3- and 4-byte string
 * whose later bytes are taken from the edges of the ranges; all against
 * the reference. */
static void test_exhaustive(void) {
    int bad = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        unsigned char b[4];
        size_t n;
        encode(cp, b, &n);
        bad += valid(b, n) == (cp >= 0xD800 && cp <= 0xDFFF);
    }
    CHECK(bad == 0, "%d code points misjudged", bad);
    bad = 0;
    const unsigned char edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90,
                                   0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (unsigned x = 0; x < 65536; x++) {
        unsigned char b[4] = {(unsigned char)(x >> 8), (unsigned char)x, 0, 0};
        if (b[1] == 0) bad += valid(b, 1) != ref_one_char(b, 1);
        bool two_ascii = b[0] < 0x80 && b[1] < 0x80;
        bad += valid(b, 2) != (ref_one_char(b, 2) || two_ascii);
        if (b[0] < 0xE0) continue; /* longer strings from here on are 3- and 4-byte leads */
        for (size_t t = 0; t < GM_ARRAY_LEN(edges); t++) {
            b[2] = edges[t];
            bad += valid(b, 3) != ref_one_char(b, 3);
            for (size_t u = 0; b[0] >= 0xF0 && u < GM_ARRAY_LEN(edges); u++) {
                b[3] = edges[u];
                bad += valid(b, 4) != ref_one_char(b, 4);
            }
        }
    }
    CHECK(bad == 0, "%d byte strings misjudged", bad);
}

int main(void) {
    test_valid_table();
    test_exhaustive();
    return gm_test_summary();
}
