/*
 * test_sampler_alloc.c - the sampler and the chat formatter with the N-th
 * allocation failing, for every N they make: each failure is reported as
 * GM_ERR_OUT_OF_MEMORY, frees what was taken (LeakSanitizer checks at exit
 * in the sanitizer build), and a failed gm_sampler_configure leaves the
 * sampler as it was. Linked against gemma3n_allocfail.
 */
#include "sampler.h"
#include "test_util.h"

void gm_test_fail_allocation_after(long n); /* alloc.c, GM_TEST_ALLOC_FAIL builds */

static bool is_oom(gm_status st, const gm_error *err) {
    return st == GM_ERR_OUT_OF_MEMORY && strstr(err->message, "out of memory") != NULL;
}

static gm_sampler_params params(gm_logit_bias *bias, size_t n_bias, float temperature) {
    gm_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = temperature;
    p.top_p = 1.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 7;
    p.logit_bias = bias;
    p.n_logit_bias = n_bias;
    return p;
}

static void test_new(void) {
    gm_logit_bias bias[] = {{1, -INFINITY}};
    gm_sampler_params p = params(bias, 1, 0);
    int failures = 0;
    for (long n = 1;; n++) {
        gm_sampler *s = NULL;
        gm_error err;
        gm_test_fail_allocation_after(n);
        gm_status st = gm_sampler_new(32, &p, &s, &err);
        gm_test_fail_allocation_after(0);
        if (st == GM_OK) {
            gm_sampler_free(s);
            break;
        }
        failures++;
        CHECK(is_oom(st, &err) && s == NULL, "allocation %ld: %s", n, err.message);
    }
    CHECK(failures >= 4, "gm_sampler_new made only %d allocations", failures);
}

static void test_configure(void) {
    float logits[32] = {0};
    logits[1] = 5.0f;
    logits[2] = 4.0f;
    gm_logit_bias ban1[] = {{1, -INFINITY}}, ban2[] = {{2, -INFINITY}};
    gm_sampler_params p = params(ban1, 1, 0);
    gm_sampler *s;
    gm_error err;
    CHECK_OK(gm_sampler_new(32, &p, &s, &err), &err);
    if (!s) return;
    gm_sampler_params q = params(ban2, 1, 0);
    gm_test_fail_allocation_after(1);
    gm_status st = gm_sampler_configure(s, &q, &err);
    gm_test_fail_allocation_after(0);
    CHECK(is_oom(st, &err), "configure under OOM: %s", err.message);
    CHECK(gm_sampler_sample(s, logits, NULL, 0) == 2, "the old bias (ban 1) still applies");
    gm_sampler_free(s);
}

static void test_chat(void) {
    gm_chat_message m[] = {{"system", "Be brief."}, {"user", "Hello"}, {"assistant", "Hi"},
                           {"user", "Tell me a long story, please."}};
    char buf[512];
    size_t len;
    int failures = 0;
    for (long n = 1;; n++) {
        gm_error err;
        gm_test_fail_allocation_after(n);
        gm_status st = gm_chat_format(m, 4, 1, 1, buf, sizeof buf, &len, &err);
        gm_test_fail_allocation_after(0);
        if (st == GM_OK) break;
        failures++;
        CHECK(is_oom(st, &err), "allocation %ld: %s", n, err.message);
    }
    CHECK(failures >= 1, "gm_chat_format made no allocation");
}

int main(void) {
    test_new();
    test_configure();
    test_chat();
    return gm_test_summary();
}
