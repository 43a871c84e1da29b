/*
 * alloc.c - the core's only entry to the C allocator, plus small buffers.
 *
 * Everything allocates through gm_malloc & co. so that a test build can
 * make the N-th allocation fail (GM_TEST_ALLOC_FAIL) and prove every
 * error path frees what it took.
 */
#include "gm_internal.h"

#include <stdio.h>
#include <stdlib.h>

#if defined(__unix__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#ifdef GM_TEST_ALLOC_FAIL
#include <stdatomic.h>
/* Test-only: allocation countdown; 0 = never fail. Not compiled into releases. */
static _Atomic long gm_test_fail_after;
GM_API void gm_test_fail_allocation_after(long n);
void gm_test_fail_allocation_after(long n) { atomic_store(&gm_test_fail_after, n); }
static bool should_fail(void) {
    long n = atomic_load(&gm_test_fail_after);
    if (n <= 0) return false;
    if (atomic_fetch_sub(&gm_test_fail_after, 1) == 1) return true;
    return false;
}
#else
static bool should_fail(void) { return false; }
#endif

void *gm_malloc(size_t size) { return should_fail() ? NULL : malloc(size ? size : 1); }
void *gm_calloc(size_t count, size_t size) {
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}
void *gm_realloc(void *ptr, size_t size) { return should_fail() ? NULL : realloc(ptr, size ? size : 1); }
void gm_free(void *ptr) { free(ptr); }

#define GM_HUGE_PAGE ((size_t)2 << 20)
/* From this size on, gm_aligned_alloc maps fresh pages itself (see there). */
#define GM_OWN_PAGES_MIN ((size_t)1 << 20)
/* What gm_aligned_alloc keeps in the word before a block it mapped itself (never a heap pointer). */
#define GM_PAGES_TAG ((void *)1)

/*
 * Zeroed and 64-byte aligned; the word before the block says how to free
 * it. Big blocks (a 4096-position KV cache, batch scratch) are fresh pages
 * from gm_alloc_weights: zero without a memset, so they become resident
 * only as far as they are used, every time. (calloc would do that only
 * while the C library still maps blocks of that size; glibc raises its
 * mapping threshold after the first big free, so a second session's buffers
 * came from the heap, memset in full: +63 MB for E2B at n_ctx 4096.)
 * Smaller blocks: calloc, then the first 64-byte boundary past a slot for
 * calloc's pointer.
 */
static void *aligned_calloc(size_t size) {
    if (should_fail() || size > SIZE_MAX - 64 - sizeof(void *)) return NULL;
    void *raw = calloc(1, size + 64 + sizeof(void *));
    if (!raw) return NULL;
    void **p = (void **)(((uintptr_t)raw + sizeof(void *) + 63) & ~(uintptr_t)63);
    p[-1] = raw;
    return p;
}

void *gm_aligned_alloc(size_t size) {
#if defined(__unix__) && defined(MAP_ANONYMOUS)
    if (size >= GM_OWN_PAGES_MIN) {
        void **p = gm_alloc_weights(size);
        if (p) p[-1] = GM_PAGES_TAG; /* the last word of the header page */
        return p;
    }
#endif
    return aligned_calloc(size);
}
void gm_aligned_free(void *ptr) {
    if (!ptr) return;
    void *tag = ((void **)ptr)[-1];
    if (tag == GM_PAGES_TAG) gm_free_weights(ptr);
    else free(tag);
}

#if defined(__unix__) && defined(MAP_ANONYMOUS)
/*
 * A private anonymous mapping: [header page][size bytes, 2 MiB aligned when
 * size >= 2 MiB]. The header page holds the mapping's length for
 * gm_free_weights; the head and tail slack is unmapped again, so nothing
 * but the header and the rounded-up last page is ever extra.
 */
void *gm_alloc_weights(size_t size) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), align = size >= GM_HUGE_PAGE ? GM_HUGE_PAGE : page;
    if (should_fail() || size > SIZE_MAX / 2) return NULL;
    const size_t len = (size + page - 1) / page * page, total = len + align + page;
    uint8_t *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)base + page + align - 1) / align * align), *hdr = p - page;
    if (hdr > base) munmap(base, (size_t)(hdr - base));
    if (base + total > p + len) munmap(p + len, (size_t)(base + total - (p + len)));
    *(size_t *)hdr = len + page;
#ifdef MADV_HUGEPAGE
    if (align == GM_HUGE_PAGE) madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}

void gm_free_weights(void *p) {
    if (!p) return;
    uint8_t *hdr = (uint8_t *)p - (size_t)sysconf(_SC_PAGESIZE);
    munmap(hdr, *(size_t *)hdr);
}
#else
void *gm_alloc_weights(size_t size) { return aligned_calloc(size); }
void gm_free_weights(void *p) { gm_aligned_free(p); }
#endif

char *gm_strndup(const char *s, size_t n) {
    char *d = gm_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

bool gm_buf_reserve(gm_buf *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1) return false;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = gm_realloc(b->data, cap);
    if (!d) return false;
    b->data = d;
    b->cap = cap;
    return true;
}

bool gm_buf_append(gm_buf *b, const void *data, size_t n) {
    if (!gm_buf_reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return true;
}

bool gm_buf_printf(gm_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    bool ok = n >= 0 && gm_buf_reserve(b, (size_t)n);
    if (ok) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return ok;
}

void gm_buf_free(gm_buf *b) {
    gm_free(b->data);
    memset(b, 0, sizeof *b);
}

gm_status gm_copy_out(const char *src, size_t len, char *dst, size_t cap, size_t *out_len,
                      gm_error *err) {
    if (out_len) *out_len = len;
    if (!dst || cap <= len)
        return gm_fail(err, GM_ERR_ARGUMENT, "output buffer too small: %zu bytes needed", len + 1);
    if (len) memcpy(dst, src, len);
    dst[len] = 0;
    return GM_OK;
}
