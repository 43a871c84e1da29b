/*
 * test_chat.c - gm_chat_format against strings written by hand from the
 * Gemma 3n chat template (and checked once with jinja2 rendering the
 * template from tokenizer_config.json).
 */
#include "gm_internal.h"
#include "test_util.h"

#define N(a) GM_ARRAY_LEN(a)

/* Formats and compares with `want`; also checks *len. */
static void expect(const gm_chat_message *m, size_t n, int gen, int bos, const char *want,
                   const char *what) {
    char buf[1024];
    size_t len = 0;
    gm_error err;
    gm_status st = gm_chat_format(m, n, gen, bos, buf, sizeof buf, &len, &err);
    CHECK(st == GM_OK, "%s: %s", what, err.message);
    if (st != GM_OK) return;
    CHECK(len == strlen(want) && strcmp(buf, want) == 0, "%s:\n got: [%s]\nwant: [%s]", what,
          buf, want);
}

static void test_formats(void) {
    gm_chat_message user[] = {{"user", "Hello"}};
    expect(user, 1, 1, 1, "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
           "single user turn + generation prompt");
    expect(user, 1, 0, 1, "<bos><start_of_turn>user\nHello<end_of_turn>\n",
           "no generation prompt");
    expect(user, 1, 1, 0, "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
           "no bos");

    gm_chat_message sys[] = {{"system", " Be brief. "}, {"user", "  Hi\n"}};
    expect(sys, 2, 1, 1,
           "<bos><start_of_turn>user\n Be brief. \n\nHi<end_of_turn>\n<start_of_turn>model\n",
           "system merged into the first user turn, system not trimmed, user trimmed");

    gm_chat_message multi[] = {{"system", "S"}, {"user", "q1"}, {"assistant", " a1\n"},
                               {"user", "q2"}, {"model", "a2"}, {"user", "q3"}};
    expect(multi, N(multi), 1, 1,
           "<bos><start_of_turn>user\nS\n\nq1<end_of_turn>\n"
           "<start_of_turn>model\na1<end_of_turn>\n"
           "<start_of_turn>user\nq2<end_of_turn>\n"
           "<start_of_turn>model\na2<end_of_turn>\n"
           "<start_of_turn>user\nq3<end_of_turn>\n"
           "<start_of_turn>model\n",
           "multi-turn, assistant written as model, prefix only on the first turn");

    gm_chat_message ends_model[] = {{"user", "q"}, {"assistant", "a"}};
    expect(ends_model, 2, 0, 0,
           "<start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\na<end_of_turn>\n",
           "ends with the model turn");

    /* Jinja's trim is Python's str.strip(): Unicode whitespace (U+3000,
     * U+00A0, U+2028, U+0085, \x1c) goes, U+200B (not whitespace) stays. */
    gm_chat_message uni[] = {{"user", "\xe3\x80\x80\xc2\xa0\x1c x\xc2\xa0y \xe2\x80\xa8\xc2\x85"},
                             {"assistant", "\xe2\x80\x8bz\xe2\x80\x8b"}};
    expect(uni, 2, 0, 0,
           "<start_of_turn>user\nx\xc2\xa0y<end_of_turn>\n"
           "<start_of_turn>model\n\xe2\x80\x8bz\xe2\x80\x8b<end_of_turn>\n",
           "Unicode trim");

    gm_chat_message blank[] = {{"user", " \t\n "}};
    expect(blank, 1, 0, 0, "<start_of_turn>user\n<end_of_turn>\n", "all-whitespace content");

    /* The template drops a lone system message (its loop is empty). */
    gm_chat_message lone[] = {{"system", "S"}};
    expect(lone, 1, 1, 1, "<bos><start_of_turn>model\n", "lone system message");
}

static void expect_fail(const gm_chat_message *m, size_t n, const char *needle, const char *what) {
    char buf[256];
    size_t len = 99;
    gm_error err;
    CHECK_FAILS(gm_chat_format(m, n, 1, 1, buf, sizeof buf, &len, &err), GM_ERR_ARGUMENT, needle,
                &err);
    CHECK(len == 0, "%s: len %zu after an error", what, len);
}

static void test_errors(void) {
    gm_chat_message two_users[] = {{"user", "a"}, {"user", "b"}};
    expect_fail(two_users, 2, "chat message 1: role \"user\" where assistant/model was expected",
                "two users");
    gm_chat_message starts_model[] = {{"system", "s"}, {"assistant", "a"}};
    expect_fail(starts_model, 2, "chat message 1: role \"assistant\" where user was expected",
                "assistant first");
    gm_chat_message two_models[] = {{"user", "a"}, {"model", "b"}, {"assistant", "c"}};
    expect_fail(two_models, 3, "chat message 2", "two model turns");
    expect_fail(two_models, 3, "must alternate", "alternation message");
    gm_chat_message late_sys[] = {{"user", "a"}, {"system", "b"}};
    expect_fail(late_sys, 2, "chat message 1: a system message is only allowed first",
                "system not first");
    gm_chat_message unknown[] = {{"user", "a"}, {"tool", "b"}};
    expect_fail(unknown, 2, "chat message 1: unknown role \"tool\"", "unknown role");
    gm_chat_message upper[] = {{"User", "a"}};
    expect_fail(upper, 1, "unknown role \"User\"", "roles are case-sensitive");
    gm_chat_message null_content[] = {{"user", "a"}, {"model", NULL}};
    expect_fail(null_content, 2, "chat message 1: content is NULL", "NULL content");
    gm_chat_message null_role[] = {{NULL, "a"}};
    expect_fail(null_role, 1, "chat message 0: role is NULL", "NULL role");
    gm_chat_message bad_utf8[] = {{"system", "ok"}, {"user", "ab\xed\xa0\x80"}};
    expect_fail(bad_utf8, 2, "chat message 1: content is not valid UTF-8 (byte offset 2)",
                "invalid UTF-8");
    gm_chat_message bad_sys[] = {{"system", "\xc0\x80"}, {"user", "a"}};
    expect_fail(bad_sys, 2, "chat message 0: content is not valid UTF-8", "invalid system UTF-8");
    expect_fail(two_users, 0, "no messages", "empty list");
    expect_fail(NULL, 1, "messages is NULL", "NULL list");
}

static void test_buffer_contract(void) {
    gm_chat_message m[] = {{"user", "Hello"}};
    const char *want = "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n";
    size_t need = strlen(want), len = 0;
    gm_error err;
    /* Measuring call: no buffer. */
    CHECK_FAILS(gm_chat_format(m, 1, 1, 1, NULL, 0, &len, &err), GM_ERR_ARGUMENT, "too small",
                &err);
    CHECK(len == need, "measured %zu, want %zu", len, need);
    /* Exactly the text but no room for the terminator: still too small, untouched. */
    char buf[128];
    memset(buf, 'x', sizeof buf);
    CHECK_FAILS(gm_chat_format(m, 1, 1, 1, buf, need, &len, &err), GM_ERR_ARGUMENT, "too small",
                &err);
    CHECK(len == need && buf[0] == 'x', "too-small buffer untouched, len %zu", len);
    CHECK_OK(gm_chat_format(m, 1, 1, 1, buf, need + 1, &len, &err), &err);
    CHECK(len == need && strcmp(buf, want) == 0, "exact fit: [%s]", buf);
    /* len may be NULL. */
    CHECK_OK(gm_chat_format(m, 1, 1, 1, buf, sizeof buf, NULL, &err), &err);
    CHECK(strcmp(buf, want) == 0, "NULL len");
    /* An empty result (lone system message, no bos, no prompt) is fine. */
    gm_chat_message lone[] = {{"system", "S"}};
    CHECK_OK(gm_chat_format(lone, 1, 0, 0, buf, sizeof buf, &len, &err), &err);
    CHECK(len == 0 && buf[0] == 0, "empty output");
}

int main(void) {
    test_formats();
    test_errors();
    test_buffer_contract();
    return gm_test_summary();
}
