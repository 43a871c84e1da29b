/* test_json.c - the JSON reader against hand-written documents. */
#include "json.h"
#include "test_util.h"

static void test_valid(void) {
    const char *src = "{\"a\": [1, 2.5e1, -3], \"b\": {\"c\": \"x\\ny\\u00e9\\ud83d\\ude00\"},"
                      " \"d\": true, \"e\": null, \"f\": [], \"g\": {}}";
    gm_json d;
    gm_error err;
    CHECK_OK(gm_json_parse(src, strlen(src), "doc", &d, &err), &err);
    int a = gm_json_get(&d, 0, "a");
    CHECK(gm_json_kind(&d, a) == GM_JSON_ARRAY && d.tok[a].size == 3, "array a");
    double sum = 0, v;
    for (int i = gm_json_first(&d, a); i >= 0; i = gm_json_next_elem(&d, a, i))
        if (gm_json_number(&d, i, &v)) sum += v;
    CHECK(sum == 23.0, "sum %g", sum);
    int c = gm_json_get(&d, gm_json_get(&d, 0, "b"), "c");
    char buf[64];
    size_t n = gm_json_string_copy(&d, c, buf, sizeof buf);
    CHECK(n == 9 && memcmp(buf, "x\ny\xc3\xa9\xf0\x9f\x98\x80", 9) == 0, "unescape (%zu)", n);
    CHECK(gm_json_kind(&d, gm_json_get(&d, 0, "d")) == GM_JSON_TRUE, "true");
    CHECK(gm_json_kind(&d, gm_json_get(&d, 0, "e")) == GM_JSON_NULL, "null");
    CHECK(gm_json_first(&d, gm_json_get(&d, 0, "f")) == -1, "empty array");
    CHECK(gm_json_first(&d, gm_json_get(&d, 0, "g")) == -1, "empty object");
    CHECK(gm_json_get(&d, 0, "zz") == -1, "missing key");
    int keys = 0;
    for (int k = gm_json_first(&d, 0); k >= 0; k = gm_json_next_key(&d, 0, k)) keys++;
    CHECK(keys == 6, "keys %d", keys);
    int64_t iv;
    CHECK(gm_json_int64(&d, gm_json_first(&d, a), &iv) && iv == 1, "int64");
    CHECK(!gm_json_int64(&d, gm_json_next_elem(&d, a, gm_json_first(&d, a)), &iv) || iv == 25, "25");
    gm_json_free(&d);
}

static void test_invalid(void) {
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "[1 2]", "\"abc", "{\"a\":1}}", "[01]",
                         "tru", "[\"\\x\"]", "{1:2}", "[1,,2]", "{\"a\":}", "[}", "\"a\nb\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gm_json d;
        gm_error err;
        CHECK_FAILS(gm_json_parse(bad[i], strlen(bad[i]), "doc", &d, &err), GM_ERR_FORMAT,
                    "invalid JSON", &err);
    }
    /* Nesting limit: an error, not a stack overflow. */
    static char deep[5000];
    memset(deep, '[', sizeof deep - 1);
    gm_json d;
    gm_error err;
    CHECK_FAILS(gm_json_parse(deep, strlen(deep), "doc", &d, &err), GM_ERR_FORMAT, "too deep", &err);
}

int main(void) {
    test_valid();
    test_invalid();
    return gm_test_summary();
}
