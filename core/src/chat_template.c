/*
 * chat_template.c - gm_chat_format: the Gemma 3 / 3n chat template for
 * string contents, in C.
 *
 * The template (tokenizer_config.json "chat_template", as Hugging Face's
 * apply_chat_template renders it), restated:
 *
 *   {{ bos_token }}
 *   if messages[0].role == "system":
 *       first_user_prefix = messages[0].content + "\n\n"     (not trimmed)
 *       loop over messages[1:]
 *   for each message (index i in the loop):
 *       raise unless (role == "user") == (i is even)
 *       "<start_of_turn>" + ("model" if role == "assistant" else role) + "\n"
 *       + (first_user_prefix if i == 0) + (content | trim) + "<end_of_turn>\n"
 *   if add_generation_prompt: "<start_of_turn>model\n"
 *
 * Jinja's trim is Python's str.strip(): it removes leading and trailing
 * Unicode whitespace (str.isspace), not only ASCII, so is_py_space lists
 * that set. Everything the template accepts is reproduced byte for byte,
 * including one quirk: a lone system message yields no turn at all (its
 * text is dropped), as the template does.
 *
 * Where we are stricter than the template: a "system" message anywhere but
 * first (the template would write a "<start_of_turn>system" turn the model
 * never saw in training), roles other than system/user/assistant/model,
 * NULL fields, invalid UTF-8, and an empty list (the template fails on
 * messages[0]) are GM_ERR_ARGUMENT naming the message index. Contents are
 * not escaped: "<end_of_turn>" inside a content becomes that special token
 * when tokenized with GM_TOKENIZE_PARSE_SPECIAL, exactly as with HF.
 */
#include "gm_internal.h"
#include "utf8.h"

/* Python's str.isspace() code points (Unicode White_Space plus U+001C..1F). */
static bool is_py_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Decodes the code point at p in valid UTF-8; its byte length goes to *len. */
static uint32_t decode_at(const unsigned char *p, size_t *len) {
    if (p[0] < 0x80) {
        *len = 1;
        return p[0];
    }
    if (p[0] < 0xE0) {
        *len = 2;
        return (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
    }
    if (p[0] < 0xF0) {
        *len = 3;
        return (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    }
    *len = 4;
    return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
           (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
}

/* Jinja's `trim` on valid UTF-8 s[0..*n): narrows *s / *n in place. */
static void trim(const char **s, size_t *n) {
    const unsigned char *p = (const unsigned char *)*s;
    size_t b = 0, e = *n, len;
    while (b < e && is_py_space(decode_at(p + b, &len))) b += len;
    while (e > b) {
        size_t k = e - 1;
        while (k > b && (p[k] & 0xC0) == 0x80) k--; /* back to the lead byte */
        if (!is_py_space(decode_at(p + k, &len))) break;
        e = k;
    }
    *s += b;
    *n = e - b;
}

static bool is_role(const char *role, const char *name) { return strcmp(role, name) == 0; }

/* Checks one message's fields; `i` is its index in the caller's array. */
static gm_status check_message(const gm_chat_message *m, size_t i, gm_error *err) {
    if (!m->role) return gm_fail(err, GM_ERR_ARGUMENT, "chat message %zu: role is NULL", i);
    if (!is_role(m->role, "system") && !is_role(m->role, "user") &&
        !is_role(m->role, "assistant") && !is_role(m->role, "model"))
        return gm_fail(err, GM_ERR_ARGUMENT,
                       "chat message %zu: unknown role \"%.32s\" (expected system, user, "
                       "assistant or model)", i, m->role);
    if (!m->content) return gm_fail(err, GM_ERR_ARGUMENT, "chat message %zu: content is NULL", i);
    size_t bad;
    if (!gm_utf8_valid(m->content, strlen(m->content), &bad))
        return gm_fail(err, GM_ERR_ARGUMENT,
                       "chat message %zu: content is not valid UTF-8 (byte offset %zu)", i, bad);
    return GM_OK;
}

/* The template's role rule: after an optional first system message, user
 * at even positions, assistant/model at odd ones. */
static gm_status check_messages(const gm_chat_message *m, size_t n, gm_error *err) {
    if (n == 0) return gm_fail(err, GM_ERR_ARGUMENT, "chat: no messages");
    if (!m) return gm_fail(err, GM_ERR_ARGUMENT, "chat: messages is NULL");
    size_t first = 0;
    for (size_t i = 0; i < n; i++) {
        gm_status st = check_message(&m[i], i, err);
        if (st != GM_OK) return st;
        bool system = is_role(m[i].role, "system");
        if (system && i == 0) {
            first = 1;
            continue;
        }
        if (system)
            return gm_fail(err, GM_ERR_ARGUMENT,
                           "chat message %zu: a system message is only allowed first", i);
        bool want_user = (i - first) % 2 == 0;
        if (is_role(m[i].role, "user") != want_user)
            return gm_fail(err, GM_ERR_ARGUMENT,
                           "chat message %zu: role \"%s\" where %s was expected; conversation "
                           "roles must alternate user/assistant/user/assistant/...", i,
                           m[i].role, want_user ? "user" : "assistant/model");
    }
    return GM_OK;
}

static bool put(gm_buf *b, const char *s) { return gm_buf_append(b, s, strlen(s)); }

/* Appends one turn; `prefix` (may be NULL) goes before the trimmed content. */
static bool put_turn(gm_buf *b, const gm_chat_message *m, const char *prefix) {
    const char *role = is_role(m->role, "assistant") ? "model" : m->role;
    const char *text = m->content;
    size_t n = strlen(text);
    trim(&text, &n);
    return put(b, "<start_of_turn>") && put(b, role) && put(b, "\n") &&
           (!prefix || (put(b, prefix) && put(b, "\n\n"))) && gm_buf_append(b, text, n) &&
           put(b, "<end_of_turn>\n");
}

/* Renders validated messages; false only when out of memory. */
static bool render(gm_buf *b, const gm_chat_message *m, size_t n, int add_generation_prompt,
                   int add_bos) {
    if (add_bos && !put(b, "<bos>")) return false;
    size_t first = is_role(m[0].role, "system") ? 1 : 0;
    const char *prefix = first ? m[0].content : NULL;
    for (size_t i = first; i < n; i++)
        if (!put_turn(b, &m[i], i == first ? prefix : NULL)) return false;
    return !add_generation_prompt || put(b, "<start_of_turn>model\n");
}

gm_status gm_chat_format(const gm_chat_message *messages, size_t n_messages,
                         int add_generation_prompt, int add_bos, char *buf, size_t cap,
                         size_t *len, gm_error *err) {
    if (len) *len = 0;
    gm_status st = check_messages(messages, n_messages, err);
    if (st != GM_OK) return st;
    gm_buf b = {0};
    if (!render(&b, messages, n_messages, add_generation_prompt, add_bos)) {
        gm_buf_free(&b);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "chat: out of memory formatting %zu messages",
                       n_messages);
    }
    st = gm_copy_out(b.data ? b.data : "", b.len, buf, cap, len, err);
    gm_buf_free(&b);
    return st;
}
