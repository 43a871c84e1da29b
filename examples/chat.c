/*
 * chat.c - a multi-turn chat on stdin/stdout with the gemma3n C API.
 *
 *   example_chat MODEL_DIR [MAX_TOKENS_PER_ANSWER]
 *
 * One user message per line. Each turn renders the whole conversation with
 * gm_chat_format and tokenizes it; the session still holds the tokens it
 * evaluated before, so only what follows the longest common prefix is
 * evaluated (gm_session_truncate + gm_session_eval). That keeps the KV
 * cache across turns without tracking the template by hand, and stays
 * correct when the re-tokenized history differs from what was generated.
 */
#include "gemma3n.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TURNS 64

static int fail(const char *what, const gm_error *err) {
    fprintf(stderr, "%s: %s\n", what, err->message);
    return 1;
}

static char *copy(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* The conversation rendered with the generation prompt, as tokens (malloc'd). */
static int32_t *render(gm_model *m, const gm_chat_message *msgs, size_t n_msgs, size_t *n, gm_error *err) {
    size_t len = 0, cap = 0;
    gm_chat_format(msgs, n_msgs, 1, 1, NULL, 0, &len, err); /* size query */
    char *text = malloc(len + 1);
    int32_t *ids = NULL;
    if (text && gm_chat_format(msgs, n_msgs, 1, 1, text, len + 1, &len, err) == GM_OK) {
        gm_model_tokenize(m, text, len, GM_TOKENIZE_PARSE_SPECIAL, NULL, 0, &cap, err); /* size query */
        ids = malloc((cap ? cap : 1) * sizeof *ids);
        if (ids && gm_model_tokenize(m, text, len, GM_TOKENIZE_PARSE_SPECIAL, ids, cap, n, err) != GM_OK) {
            free(ids);
            ids = NULL;
        }
    }
    free(text);
    return ids;
}

/* Evaluates only the tokens after the prefix the session already holds. */
static gm_status eval_new_part(gm_session *s, const int32_t *ids, size_t n, gm_error *err) {
    size_t n_old, keep = 0;
    const int32_t *old = gm_session_tokens(s, &n_old);
    while (keep < n_old && keep < n && old[keep] == ids[keep]) keep++;
    if (keep == n) keep--; /* evaluate at least one token to get fresh logits */
    gm_status st = gm_session_truncate(s, keep, err);
    return st == GM_OK ? gm_session_eval(s, ids + keep, n - keep, err) : st;
}

/* Streams one answer and returns its text (malloc'd), or NULL on error. */
static char *answer(gm_session *s, int max_tokens, gm_error *err) {
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = max_tokens;
    if (gm_session_generate_begin(s, &gp, err) != GM_OK) return NULL;
    size_t len = 0;
    char *reply = calloc(1, 1);
    gm_step step = {.finish = GM_FINISH_NONE};
    while (reply && step.finish == GM_FINISH_NONE) {
        if (gm_session_next(s, &step, err) != GM_OK) break;
        fwrite(step.text, 1, step.text_len, stdout);
        fflush(stdout);
        char *grown = realloc(reply, len + step.text_len + 1);
        if (!grown) break;
        reply = grown;
        memcpy(reply + len, step.text, step.text_len);
        reply[len += step.text_len] = 0;
    }
    putchar('\n');
    if (step.finish == GM_FINISH_NONE) { /* stopped by an error */
        free(reply);
        return NULL;
    }
    return reply;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [MAX_TOKENS_PER_ANSWER]\n", argv[0]);
        return 2;
    }
    int max_tokens = argc > 2 ? atoi(argv[2]) : 256;
    gm_error err;
    gm_model *model;
    if (gm_model_open(argv[1], NULL, &model, &err) != GM_OK) return fail(argv[1], &err);
    gm_session *s;
    if (gm_session_new(model, NULL, &s, &err) != GM_OK) return fail("session", &err);

    gm_chat_message history[MAX_TURNS * 2];
    char *owned[MAX_TURNS * 2]; /* the contents, to free */
    size_t n_msgs = 0;
    char line[4096];
    int rc = 0;
    while (rc == 0 && n_msgs + 2 <= MAX_TURNS * 2 && fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        owned[n_msgs] = copy(line, strlen(line));
        history[n_msgs] = (gm_chat_message){"user", owned[n_msgs]};
        n_msgs++;
        size_t n;
        int32_t *ids = render(model, history, n_msgs, &n, &err);
        char *reply = NULL;
        if (ids && eval_new_part(s, ids, n, &err) == GM_OK) reply = answer(s, max_tokens, &err);
        free(ids);
        if (!reply) rc = fail("chat", &err);
        else {
            owned[n_msgs] = reply;
            history[n_msgs++] = (gm_chat_message){"assistant", reply};
        }
    }
    for (size_t i = 0; i < n_msgs; i++) free(owned[i]);
    gm_session_free(s);
    gm_model_free(model);
    return rc;
}
