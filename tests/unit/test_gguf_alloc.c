/*
 * test_gguf_alloc.c - the GGUF reader and writer with the N-th allocation
 * failing, for every N they make: each failure is reported as
 * GM_ERR_OUT_OF_MEMORY and frees what was taken (LeakSanitizer checks at
 * exit in the sanitizer build). Linked against gemma3n_allocfail.
 */
#include "gguf.h"
#include "test_util.h"

void gm_test_fail_allocation_after(long n); /* alloc.c, GM_TEST_ALLOC_FAIL builds */

static bool ok_or_oom(gm_status st, const gm_error *err) {
    return st == GM_OK || (st == GM_ERR_OUT_OF_MEMORY && strstr(err->message, "out of memory"));
}

/* Runs every writer call once; returns how many failed (each must be OK or OOM). */
static int write_once(uint8_t **buf, size_t *size, int *bad) {
    static const char *const toks[] = {"a", "bc", "def"};
    static const uint32_t arr[] = {1, 2, 3};
    static float f32[64];
    int64_t ne[] = {32, 2};
    gm_gguf_writer *w;
    gm_error err;
    int failed = 0;
    *buf = NULL;
    gm_status st = gm_gguf_writer_new(&w, &err);
    if (st != GM_OK) {
        *bad += !ok_or_oom(st, &err);
        return 1;
    }
    gm_status sts[7]; /* in call order (an initializer list would leave the order unspecified) */
    sts[0] = gm_gguf_writer_set_str(w, "general.architecture", "gemma3n", &err);
    sts[1] = gm_gguf_writer_set_u32(w, "k.a", 7, &err);
    sts[2] = gm_gguf_writer_set_arr(w, "k.arr", GM_GGUF_U32, arr, 3, &err);
    sts[3] = gm_gguf_writer_set_arr_str(w, "k.toks", toks, NULL, 3, &err);
    sts[4] = gm_gguf_writer_add_tensor(w, "t0", GM_GGML_F32, 2, ne, f32, NULL, NULL, &err);
    sts[5] = gm_gguf_writer_add_tensor(w, "t1", GM_GGML_F32, 1, ne, f32, NULL, NULL, &err);
    sts[6] = gm_gguf_writer_write_buffer(w, buf, size, &err);
    for (size_t i = 0; i < GM_ARRAY_LEN(sts); i++) {
        failed += sts[i] != GM_OK;
        *bad += sts[i] != GM_OK && sts[i] != GM_ERR_OUT_OF_MEMORY;
    }
    if (sts[GM_ARRAY_LEN(sts) - 1] != GM_OK) *buf = NULL;
    gm_gguf_writer_free(w);
    return failed;
}

static void test_writer(void) {
    int bad = 0, n;
    for (n = 1; n < 1000; n++) {
        uint8_t *buf;
        size_t size;
        gm_test_fail_allocation_after(n);
        int failed = write_once(&buf, &size, &bad);
        gm_test_fail_allocation_after(0);
        gm_free(buf);
        if (failed == 0) break; /* n is past the last allocation */
    }
    CHECK(bad == 0, "%d writer failures were not out-of-memory", bad);
    CHECK(n > 5 && n < 1000, "writer makes %d allocations", n - 1);
}

static void test_reader(const uint8_t *buf, size_t size) {
    int bad = 0, n;
    FILE *f = fopen("test_gguf_alloc.gguf", "wb");
    fwrite(buf, 1, size, f);
    fclose(f);
    for (int from_file = 0; from_file < 2; from_file++) {
        for (n = 1; n < 1000; n++) {
            gm_gguf *g = NULL;
            gm_error err;
            gm_test_fail_allocation_after(n);
            gm_status st = from_file ? gm_gguf_open_file("test_gguf_alloc.gguf", &g, &err)
                                     : gm_gguf_open_buffer(buf, size, "alloc", &g, &err);
            gm_test_fail_allocation_after(0);
            bad += !ok_or_oom(st, &err) || (st != GM_OK) != (g == NULL);
            gm_gguf_free(g);
            if (st == GM_OK) break;
        }
        CHECK(n > 3 && n < 1000, "reader makes %d allocations", n - 1);
    }
    CHECK(bad == 0, "%d reader failures were not clean out-of-memory errors", bad);
    remove("test_gguf_alloc.gguf");
}

int main(void) {
    test_writer();
    uint8_t *buf;
    size_t size;
    int bad = 0;
    CHECK(write_once(&buf, &size, &bad) == 0 && bad == 0, "clean write");
    if (buf) test_reader(buf, size);
    gm_free(buf);
    return gm_test_summary();
}
