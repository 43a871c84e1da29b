/*
 * generate.c - the smallest complete use of the gemma3n C API: open a
 * model, turn a prompt into token ids, stream a completion.
 *
 *   example_generate MODEL_DIR "The capital of France is" [N]
 *   example_generate MODEL_DIR --tokens 2,651,6037 [N]
 *
 * Decoding is greedy (temperature 0) so that the output is reproducible;
 * set sp.sampler.temperature / top_k / top_p / seed to sample instead.
 * A model directory without tokenizer.json only works with --tokens, and
 * then the generated ids are printed instead of text.
 */
#include "gemma3n.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROMPT 4096

static int fail(const char *what, const gm_error *err) {
    fprintf(stderr, "%s: %s\n", what, err->message);
    return 1;
}

/* "2,651,6037" -> ids; returns the count, or 0 on a malformed list. */
static size_t parse_ids(const char *s, int32_t *ids, size_t cap) {
    size_t n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || (*end && *end != ',')) return 0;
        ids[n++] = (int32_t)v;
        s = *end ? end + 1 : end;
    }
    return *s ? 0 : n;
}

/* Fills ids from argv: a text prompt (tokenized with <bos>) or --tokens. */
static int prompt_ids(gm_model *model, int argc, char **argv, int32_t *ids, size_t *n) {
    gm_error err;
    if (strcmp(argv[2], "--tokens") == 0) {
        *n = argc > 3 ? parse_ids(argv[3], ids, MAX_PROMPT) : 0;
        if (*n == 0) fprintf(stderr, "--tokens needs a list such as 2,651,6037\n");
        return *n ? 0 : 1;
    }
    const char *text = argv[2];
    if (gm_model_tokenize(model, text, strlen(text), GM_TOKENIZE_ADD_BOS, ids, MAX_PROMPT, n, &err) != GM_OK)
        return fail("tokenize", &err);
    return 0;
}

/* Prompt in, completion out: eval the prompt, then pull tokens until a finish reason. */
static int complete(gm_model *model, const int32_t *ids, size_t n, int n_predict) {
    gm_error err;
    gm_session_params sp = gm_session_default_params();
    sp.sampler.temperature = 0; /* greedy */
    gm_session *s;
    if (gm_session_new(model, &sp, &s, &err) != GM_OK) return fail("session", &err);
    int rc = 0;
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = n_predict;
    if (gm_session_eval(s, ids, n, &err) != GM_OK || gm_session_generate_begin(s, &gp, &err) != GM_OK) {
        rc = fail("prompt", &err);
    }
    int has_text = gm_model_tokenizer(model) != NULL;
    gm_step step = {.finish = GM_FINISH_NONE};
    while (rc == 0 && step.finish == GM_FINISH_NONE) {
        if (gm_session_next(s, &step, &err) != GM_OK) {
            rc = fail("generate", &err);
            break;
        }
        if (has_text) fwrite(step.text, 1, step.text_len, stdout); /* a piece: whole UTF-8 characters */
        else if (step.token >= 0) printf("%d ", step.token);
        fflush(stdout);
    }
    if (rc == 0) printf("\n[%d tokens, finished by %s]\n", step.n_generated,
                        step.finish == GM_FINISH_STOP ? "a stop token" : "the length limit");
    gm_session_free(s);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR (PROMPT | --tokens IDS) [N]\n", argv[0]);
        return 2;
    }
    int tokens = strcmp(argv[2], "--tokens") == 0;
    int n_predict = argc > 3 + tokens ? atoi(argv[3 + tokens]) : 64;

    gm_error err;
    gm_model *model;
    if (gm_model_open(argv[1], NULL, &model, &err) != GM_OK) return fail(argv[1], &err);

    static int32_t ids[MAX_PROMPT];
    size_t n = 0;
    int rc = prompt_ids(model, argc, argv, ids, &n);
    if (rc == 0) rc = complete(model, ids, n, n_predict);
    gm_model_free(model);
    return rc;
}
