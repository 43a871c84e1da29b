/*
 * test_tokenizer.c - the tokenizer against the Hugging Face reference.
 *
 * Every sample of tests/data/tokenizer/reference_encodings.json must encode
 * to ids_plain / ids_with_bos exactly and decode back to `decoded`
 * (special tokens kept: the reference decodes "<bos><eos>..." to itself).
 * Then the contracts of gemma3n.h: buffers, errors, token lookups, special
 * token parsing, and the arrays-based builder a GGUF loader will use.
 */
#include "gemma3n.h"
#include "json.h"
#include "test_util.h"
#include "tokenizer.h"

#include <pthread.h>
#include <time.h>

static gm_tokenizer *tok;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- helpers ---- */

/* Encodes into a heap array; returns the count or -1 (error printed). */
static long encode(const gm_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids) {
    gm_error err;
    size_t n = 0;
    gm_status st = gm_tokenize(t, text, len, flags, NULL, 0, &n, &err);
    if (st != GM_OK && st != GM_ERR_ARGUMENT) return -1;
    if (st == GM_ERR_ARGUMENT && n == 0) {
        fprintf(stderr, "encode: %s\n", err.message);
        return -1;
    }
    *ids = malloc((n ? n : 1) * sizeof **ids);
    st = gm_tokenize(t, text, len, flags, *ids, n, &n, &err);
    if (st != GM_OK) {
        fprintf(stderr, "encode: %s\n", err.message);
        free(*ids);
        *ids = NULL;
        return -1;
    }
    return (long)n;
}

static char *decode(const gm_tokenizer *t, const int32_t *ids, size_t n, int skip, size_t *len) {
    gm_error err;
    gm_detokenize(t, ids, n, skip, NULL, 0, len, &err);
    char *buf = malloc(*len + 1);
    if (gm_detokenize(t, ids, n, skip, buf, *len + 1, len, &err) != GM_OK) {
        fprintf(stderr, "decode: %s\n", err.message);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Ids of a JSON array token. */
static size_t json_ids(const gm_json *d, int arr, int32_t **out) {
    size_t n = arr >= 0 ? d->tok[arr].size : 0, i = 0;
    *out = malloc((n ? n : 1) * sizeof **out);
    for (int e = gm_json_first(d, arr); e >= 0; e = gm_json_next_elem(d, arr, e)) {
        int64_t v = -1;
        gm_json_int64(d, e, &v);
        (*out)[i++] = (int32_t)v;
    }
    return n;
}

/* Compares two id lists; prints the first difference with some context. */
static int same_ids(const char *label, size_t sample, const int32_t *got, long n_got,
                    const int32_t *want, size_t n_want) {
    if (n_got == (long)n_want && memcmp(got, want, n_want * sizeof *got) == 0) return 1;
    size_t i = 0;
    while (n_got >= 0 && i < (size_t)n_got && i < n_want && got[i] == want[i]) i++;
    fprintf(stderr, "sample %zu %s: %ld ids, want %zu; first difference at index %zu:", sample, label,
            n_got, n_want, i);
    fprintf(stderr, " got");
    for (size_t k = i; n_got >= 0 && k < (size_t)n_got && k < i + 6; k++) fprintf(stderr, " %d", got[k]);
    fprintf(stderr, " | want");
    for (size_t k = i; k < n_want && k < i + 6; k++) fprintf(stderr, " %d", want[k]);
    fputc('\n', stderr);
    return 0;
}

/* ---- reference samples ---- */

static void check_reference_with(const gm_tokenizer *t, const char *label, int check_decode) {
    char *src = NULL;
    size_t size = 0;
    gm_error err;
    gm_json doc;
    CHECK_OK(gm_read_file(test_path("tokenizer/reference_encodings.json"), &src, &size, &err), &err);
    CHECK_OK(gm_json_parse(src, size, "reference_encodings.json", &doc, &err), &err);
    int n_samples = 0, n_ok = 0;
    for (int s = gm_json_first(&doc, 0); s >= 0; s = gm_json_next_elem(&doc, 0, s), n_samples++) {
        size_t text_len, dec_len;
        char *text = gm_json_string_dup(&doc, gm_json_get(&doc, s, "text"), &text_len);
        char *want_dec = gm_json_string_dup(&doc, gm_json_get(&doc, s, "decoded"), &dec_len);
        int32_t *plain, *bos, *got = NULL, *got_bos = NULL;
        size_t n_plain = json_ids(&doc, gm_json_get(&doc, s, "ids_plain"), &plain);
        size_t n_bos = json_ids(&doc, gm_json_get(&doc, s, "ids_with_bos"), &bos);
        long n = encode(t, text, text_len, GM_TOKENIZE_PARSE_SPECIAL, &got);
        long nb = encode(t, text, text_len, GM_TOKENIZE_PARSE_SPECIAL | GM_TOKENIZE_ADD_BOS, &got_bos);
        int ok = same_ids(label, (size_t)n_samples, got, n, plain, n_plain) &
                 same_ids(label, (size_t)n_samples, got_bos, nb, bos, n_bos);
        if (check_decode) {
            size_t len = 0;
            char *dec = decode(t, plain, n_plain, 0, &len);
            int dec_ok = dec && len == dec_len && memcmp(dec, want_dec, len) == 0;
            if (!dec_ok) fprintf(stderr, "sample %d: decoded text differs (%zu vs %zu bytes)\n", n_samples, len, dec_len);
            ok &= dec_ok;
            free(dec);
        }
        n_ok += ok;
        free(text); free(want_dec); free(plain); free(bos); free(got); free(got_bos);
    }
    CHECK(n_samples == 126 && n_ok == n_samples, "%s: %d of %d reference samples match", label, n_ok, n_samples);
    printf("%s: %d/%d reference samples match\n", label, n_ok, n_samples);
    gm_json_free(&doc);
    gm_free(src);
}

/* ---- contracts ---- */

static void check_lookups(void) {
    CHECK(gm_tokenizer_vocab_size(tok) == 262145, "vocab %d", gm_tokenizer_vocab_size(tok));
    CHECK(gm_tokenizer_bos_id(tok) == 2, "bos %d", gm_tokenizer_bos_id(tok));
    CHECK(gm_tokenizer_eos_id(tok) == 1, "eos %d", gm_tokenizer_eos_id(tok));
    CHECK(gm_tokenizer_token_id(tok, "<end_of_turn>") == 106, "got %d", gm_tokenizer_token_id(tok, "<end_of_turn>"));
    CHECK(gm_tokenizer_token_id(tok, "<start_of_turn>") == 105, "%s", "lookup");
    CHECK(gm_tokenizer_token_id(tok, "<image_soft_token>") == 262144, "%s", "added beyond the model vocab");
    CHECK(gm_tokenizer_token_id(tok, "<0x0A>") >= 0, "%s", "lookup");
    CHECK(gm_tokenizer_token_id(tok, "no such token here") == -1, "%s", "lookup");
    CHECK(gm_tokenizer_token_id(tok, NULL) == -1, "%s", "lookup");
    CHECK(gm_token_is_special(tok, 2) && gm_token_is_special(tok, 106) && !gm_token_is_special(tok, 138), "%s", "lookup");
    CHECK(!gm_token_is_special(tok, -1) && !gm_token_is_special(tok, 1 << 30), "%s", "lookup");

    size_t len = 99;
    const char *b = gm_token_bytes(tok, gm_tokenizer_token_id(tok, "▁the"), &len);
    CHECK(b && len == 4 && memcmp(b, " the", 4) == 0, "▁the -> %.*s", (int)len, b ? b : "");
    b = gm_token_bytes(tok, gm_tokenizer_token_id(tok, "<0x0A>"), &len);
    CHECK(b && len == 1 && b[0] == '\n', "<0x0A>");
    b = gm_token_bytes(tok, gm_tokenizer_token_id(tok, "<0xE2>"), &len);
    CHECK(b && len == 1 && (unsigned char)b[0] == 0xE2, "<0xE2>");
    b = gm_token_bytes(tok, 106, &len);
    CHECK(b && len == 13 && memcmp(b, "<end_of_turn>", 13) == 0, "special text");
    b = gm_token_bytes(tok, 138, &len); /* "▁▁" */
    CHECK(b && len == 2 && memcmp(b, "  ", 2) == 0, "▁▁");
    CHECK(gm_token_bytes(tok, -1, &len) == NULL && len == 0, "%s", "lookup");
    CHECK(gm_token_bytes(tok, 262145, &len) == NULL, "%s", "lookup");
}

static void check_special_parsing(void) {
    const char *t = "<start_of_turn>user\nHi<end_of_turn>";
    int32_t *on = NULL, *off = NULL;
    long n_on = encode(tok, t, strlen(t), GM_TOKENIZE_PARSE_SPECIAL, &on);
    long n_off = encode(tok, t, strlen(t), 0, &off);
    CHECK(n_on >= 3 && on[0] == 105 && on[n_on - 1] == 106, "parse special on: %ld ids", n_on);
    int any_special = 0;
    for (long i = 0; i < n_off; i++) any_special |= off[i] == 105 || off[i] == 106;
    CHECK(n_off > n_on && !any_special, "parse special off: %ld ids, special=%d", n_off, any_special);
    /* Plain text still round-trips, and non-special added tokens ("\n\n") still match. */
    size_t len;
    char *back = decode(tok, off, (size_t)n_off, 0, &len);
    CHECK(back && len == strlen(t) && memcmp(back, t, len) == 0, "round trip: %s", back ? back : "");
    free(back);
    free(on);
    free(off);
    int32_t *nl = NULL;
    long n_nl = encode(tok, "a\n\nb", 4, 0, &nl);
    CHECK(n_nl == 3 && nl[1] == 108, "\\n\\n is added token 108 without PARSE_SPECIAL (%ld ids)", n_nl);
    free(nl);

    /* skip_special drops specials and keeps everything else. */
    int32_t ids[] = {2, 105, 2364, 107, 106};
    char *txt = decode(tok, ids, 5, 1, &len);
    CHECK(txt && strcmp(txt, "user\n") == 0, "skip_special: \"%s\"", txt ? txt : "");
    free(txt);
    txt = decode(tok, ids, 5, 0, &len);
    CHECK(txt && strcmp(txt, "<bos><start_of_turn>user\n<end_of_turn>") == 0, "keep special: \"%s\"", txt ? txt : "");
    free(txt);
}

static void check_buffers(void) {
    gm_error err;
    int32_t ids[64];
    size_t n = 0;
    const char *t = "Hello world, this is a test.";
    CHECK_OK(gm_tokenize(tok, t, strlen(t), GM_TOKENIZE_ADD_BOS, ids, 64, &n, &err), &err);
    size_t need = n;
    CHECK(need > 3 && ids[0] == 2, "n=%zu", need);
    int32_t small[2] = {-7, -7};
    n = 0;
    CHECK_FAILS(gm_tokenize(tok, t, strlen(t), GM_TOKENIZE_ADD_BOS, small, 2, &n, &err), GM_ERR_ARGUMENT,
                "too small", &err);
    CHECK(n == need && small[0] == 2 && small[1] == ids[1], "needed %zu, got %zu; the prefix is written", need, n);
    CHECK_FAILS(gm_tokenize(tok, t, strlen(t), 0, NULL, 0, &n, &err), GM_ERR_ARGUMENT, "too small", &err);
    CHECK(n == need - 1, "size query without bos: %zu", n);

    /* Empty text: nothing, or just <bos>. */
    CHECK_OK(gm_tokenize(tok, "", 0, 0, ids, 64, &n, &err), &err);
    CHECK(n == 0, "empty -> %zu ids", n);
    CHECK_OK(gm_tokenize(tok, NULL, 0, GM_TOKENIZE_ADD_BOS, ids, 64, &n, &err), &err);
    CHECK(n == 1 && ids[0] == 2, "empty + bos -> %zu ids", n);

    /* Detokenize: exact fit needs room for the terminator. */
    int32_t hello[] = {9259, 1902}; /* "Hello", " world" */
    size_t len = 0;
    char buf[64];
    CHECK_OK(gm_detokenize(tok, hello, 2, 0, buf, sizeof buf, &len, &err), &err);
    CHECK(len == 11 && strcmp(buf, "Hello world") == 0, "\"%s\"", buf);
    memset(buf, 'x', sizeof buf);
    CHECK_FAILS(gm_detokenize(tok, hello, 2, 0, buf, 11, &len, &err), GM_ERR_ARGUMENT, "12 bytes needed", &err);
    CHECK(len == 11, "needed %zu", len);
    CHECK_OK(gm_detokenize(tok, hello, 2, 0, buf, 12, &len, &err), &err);
    CHECK(buf[11] == 0, "terminated");
    CHECK_OK(gm_detokenize(tok, hello, 0, 0, buf, 1, &len, &err), &err);
    CHECK(len == 0 && buf[0] == 0, "empty decode");
}

static void check_errors(void) {
    gm_error err;
    int32_t ids[16];
    size_t n = 0;
    CHECK_FAILS(gm_tokenize(tok, "ab\xC3(", 4, 0, ids, 16, &n, &err), GM_ERR_ARGUMENT, "offset 2", &err);
    CHECK_FAILS(gm_tokenize(tok, "\xED\xA0\x80", 3, 0, ids, 16, &n, &err), GM_ERR_ARGUMENT, "offset 0", &err);
    CHECK_FAILS(gm_tokenize(tok, "ok\xF4\x90\x80\x80", 6, 0, ids, 16, &n, &err), GM_ERR_ARGUMENT, "offset 2", &err);
    CHECK_FAILS(gm_tokenize(tok, "a", 1, 0x100, ids, 16, &n, &err), GM_ERR_ARGUMENT, "flags", &err);
    CHECK_FAILS(gm_tokenize(NULL, "a", 1, 0, ids, 16, &n, &err), GM_ERR_ARGUMENT, "NULL", &err);

    int32_t bad[] = {2, 9259, 262145};
    size_t len;
    char buf[64];
    CHECK_FAILS(gm_detokenize(tok, bad, 3, 0, buf, 64, &len, &err), GM_ERR_ARGUMENT,
                "token id 262145 at position 2 is out of range", &err);
    bad[2] = -5;
    CHECK_FAILS(gm_detokenize(tok, bad, 3, 0, buf, 64, &len, &err), GM_ERR_ARGUMENT, "id -5 at position 2", &err);

    gm_tokenizer *t = (gm_tokenizer *)1;
    CHECK_FAILS(gm_tokenizer_open(test_path("tokenizer/no_such_file.json"), &t, &err), GM_ERR_IO, "no_such_file", &err);
    CHECK(t == NULL, "out cleared on failure");
    const char *corrupt = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,}}}";
    CHECK_FAILS(gm_tokenizer_open_json(corrupt, strlen(corrupt), "corrupt.json", &t, &err), GM_ERR_FORMAT,
                "corrupt.json: invalid JSON", &err);
    const char *wp = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}";
    CHECK_FAILS(gm_tokenizer_open_json(wp, strlen(wp), "wp.json", &t, &err), GM_ERR_UNSUPPORTED,
                "model type WordPiece is not supported", &err);
    const char *oov = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]},"
                      " \"decoder\": {\"type\": \"Fuse\"}}";
    CHECK_FAILS(gm_tokenizer_open_json(oov, strlen(oov), "oov.json", &t, &err), GM_ERR_FORMAT,
                "\"ab\" is not in the vocabulary", &err);
    const char *drop = "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, \"merges\": []}}";
    CHECK_FAILS(gm_tokenizer_open_json(drop, strlen(drop), "d.json", &t, &err), GM_ERR_UNSUPPORTED, "dropout", &err);
    const char *nfc = "{\"normalizer\": {\"type\": \"NFC\"}, \"decoder\": {\"type\": \"Fuse\"},"
                      " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}";
    CHECK_FAILS(gm_tokenizer_open_json(nfc, strlen(nfc), "n.json", &t, &err), GM_ERR_UNSUPPORTED,
                "normalizer type NFC is not supported", &err);
}

/* Invalid byte runs decode to one U+FFFD per byte token (HF ByteFallback). */
static void check_byte_fallback_decode(void) {
    int32_t e2 = gm_tokenizer_token_id(tok, "<0xE2>"), x82 = gm_tokenizer_token_id(tok, "<0x82>");
    int32_t xac = gm_tokenizer_token_id(tok, "<0xAC>"), a = gm_tokenizer_token_id(tok, "<0x41>");
    int32_t hello = 9259;
    size_t len;
    int32_t euro[] = {e2, x82, xac, hello};
    char *s = decode(tok, euro, 4, 0, &len);
    CHECK(s && strcmp(s, "\xE2\x82\xAC" "Hello") == 0, "euro: %s", s ? s : "");
    free(s);
    int32_t cut[] = {a, e2, x82, hello, e2};
    s = decode(tok, cut, 5, 0, &len);
    CHECK(s && strcmp(s, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "Hello\xEF\xBF\xBD") == 0, "cut: %s", s ? s : "");
    free(s);
    /* A skipped special inside a byte run does not split it. */
    int32_t split[] = {e2, 106, x82, xac};
    s = decode(tok, split, 4, 1, &len);
    CHECK(s && strcmp(s, "\xE2\x82\xAC") == 0, "run across a skipped special");
    free(s);
    /* Encoding a character missing from the vocabulary falls back to bytes. */
    int32_t *ids = NULL;
    long n = encode(tok, "\xF0\xA0\x80\x80", 4, 0, &ids); /* U+20000 */
    CHECK(n == 4 && ids[0] == gm_tokenizer_token_id(tok, "<0xF0>") && ids[3] == gm_tokenizer_token_id(tok, "<0x80>"),
          "U+20000 -> %ld ids", n);
    free(ids);
}

/* Best of 2 timings of encoding text[0..n); the id count goes to *n_ids. */
static double encode_time(const char *text, size_t n, long *n_ids) {
    double best = 1e9;
    for (int r = 0; r < 2; r++) {
        int32_t *ids = NULL;
        double t0 = now_s();
        *n_ids = encode(tok, text, n, 0, &ids);
        best = GM_MIN(best, now_s() - t0);
        free(ids);
    }
    return best;
}

/*
 * Long inputs: a 100 KB run of one character is a single BPE word, the
 * case where a naive merge loop goes quadratic (that would take minutes and
 * hit the test's ctest timeout; the times are printed, and bench_tokenizer
 * measures throughput - no timing is asserted here). "ab " repeated m
 * times is also one word (the normalizer turns every space into U+2581
 * before the Split pre-tokenizer looks for spaces) and encodes as "ab",
 * then "▁ab" m-1 times, then "▁": m + 1 ids.
 */
static void check_long_inputs(void) {
    size_t n = 99999; /* a multiple of the period 3 of "ab " */
    char *text = malloc(n + 1);
    for (int pattern = 0; pattern < 2; pattern++) {
        for (size_t i = 0; i < n; i++) text[i] = pattern ? "ab "[i % 3] : 'a';
        long k_small, k_big;
        double t_small = encode_time(text, n / 10, &k_small);
        double t_big = encode_time(text, n, &k_big);
        CHECK(k_big > 0 && k_small > 0, "%s: encodes", pattern ? "'ab '" : "'a'");
        if (pattern) CHECK(k_big == 33334 && k_small == 3334, "'ab ' x 33333: %ld ids, x 3333: %ld ids", k_big, k_small);
        printf("100 KB of %s: %ld ids in %.3f s (10 KB: %.4f s)\n", pattern ? "\"ab \"" : "one character",
               k_big, t_big, t_small);
    }
    memset(text, 'a', n);
    int32_t *ids = NULL;
    long k = encode(tok, text, n, 0, &ids);
    size_t len = 0;
    char *back = k > 0 ? decode(tok, ids, (size_t)k, 0, &len) : NULL;
    CHECK(back && len == n && memcmp(back, text, n) == 0, "round trip of 100 KB");
    free(back);
    free(ids);
    free(text);
}

/*
 * Random text (ASCII, spaces, newlines, 2-4 byte characters, control
 * tokens) decodes back to itself: the byte fallback and the added-token
 * splitting lose nothing. "▁" is left out: it decodes to a space.
 */
static void check_random_round_trips(void) {
    static const char *const pieces[] = {"a", "Z", " ", "  ", "\n", "\n\n", "\t", "\xC3\xA9", "\xE4\xBD\xA0",
                                         "\xF0\x9F\x98\x80", "\xF0\xA0\x80\x80", "<start_of_turn>", "<eos>",
                                         "<", ">", "the", "\xEA\xB0\x80", "\xD7\x90", "0", "\x7F", "\x01"};
    uint32_t rng = 12345;
    int bad = 0;
    char text[512];
    for (int round = 0; round < 300; round++) {
        size_t len = 0;
        int n_pieces = 1 + round % 40;
        for (int k = 0; k < n_pieces; k++) {
            rng = rng * 1664525u + 1013904223u;
            const char *p = pieces[(rng >> 16) % GM_ARRAY_LEN(pieces)];
            memcpy(text + len, p, strlen(p));
            len += strlen(p);
        }
        for (unsigned flags = 0; flags <= GM_TOKENIZE_PARSE_SPECIAL; flags += GM_TOKENIZE_PARSE_SPECIAL) {
            int32_t *ids = NULL;
            long n = encode(tok, text, len, flags, &ids);
            size_t out_len = 0;
            char *back = n >= 0 ? decode(tok, ids, (size_t)n, 0, &out_len) : NULL;
            if (!back || out_len != len || memcmp(back, text, len) != 0) {
                if (!bad) fprintf(stderr, "round trip failed for \"%.*s\" (flags %u)\n", (int)len, text, flags);
                bad++;
            }
            free(back);
            free(ids);
        }
    }
    CHECK(bad == 0, "%d of 600 random round trips failed", bad);
}

/* One tokenizer, several threads: each encodes the same text and must get the same ids. */
typedef struct thread_job {
    const char *text;
    size_t len;
    const int32_t *want;
    long n_want;
    int mismatches;
} thread_job;

static void *encode_many(void *arg) {
    thread_job *job = arg;
    for (int r = 0; r < 50; r++) {
        int32_t *ids = NULL;
        long n = encode(tok, job->text, job->len, GM_TOKENIZE_PARSE_SPECIAL, &ids);
        job->mismatches += n != job->n_want || memcmp(ids, job->want, (size_t)n * sizeof *ids) != 0;
        free(ids);
    }
    return NULL;
}

static void check_threads(void) {
    const char *text = "<start_of_turn>user\nWrite a haiku about caf\xC3\xA9 \xE2\x98\x95 and \xF0\x9F\x98\x80!<end_of_turn>\n";
    int32_t *want = NULL;
    long n_want = encode(tok, text, strlen(text), GM_TOKENIZE_PARSE_SPECIAL, &want);
    pthread_t th[4];
    thread_job jobs[4];
    for (int k = 0; k < 4; k++) {
        jobs[k] = (thread_job){text, strlen(text), want, n_want, 0};
        pthread_create(&th[k], NULL, encode_many, &jobs[k]);
    }
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        bad += jobs[k].mismatches;
    }
    CHECK(n_want > 0 && bad == 0, "%d mismatches across threads", bad);
    free(want);
}

/* ---- the arrays-based builder (what a GGUF loader calls) ---- */

static gm_str str_of(const char *s) { return (gm_str){s, strlen(s)}; }

/* A tiny BPE with every option the JSON path does not exercise. */
static void check_builder_small(void) {
    gm_str vocab[] = {str_of("<unk>"), str_of("a"), str_of("b"), str_of("c"), str_of("ab"), str_of("abc"),
                      str_of("_"), str_of("<0x64>"), str_of("<s>"), str_of("bc")};
    gm_str merges[] = {str_of("a"), str_of("b"), str_of("ab"), str_of("c"), str_of("b"), str_of("c")};
    gm_added_token added[] = {{8, str_of("<s>"), GM_ADDED_SPECIAL}, {10, str_of("[X]"), GM_ADDED_LSTRIP | GM_ADDED_RSTRIP}};
    gm_tokenizer_spec spec = {.n_tokens = 10, .tokens = vocab, .merges = merges, .n_merges = 3,
                              .unk_id = 0, .fuse_unk = true, .byte_fallback = true,
                              .added = added, .n_added = 2, .n_norm = 1,
                              .norm = {{GM_NORM_REPLACE, str_of(" "), str_of("_")}},
                              .split = GM_SPLIT_MERGED_WITH_NEXT, .split_pattern = str_of("_"),
                              .dec_replace_pattern = str_of("_"), .dec_replace_content = str_of(" "),
                              .dec_byte_fallback = true, .bos_id = 8, .eos_id = -1};
    gm_tokenizer *t = NULL;
    gm_error err;
    CHECK_OK(gm_tokenizer_build(&spec, "small", &t, &err), &err);
    if (!t) return;
    int32_t *ids = NULL;
    /*
     * "abc xyd " normalizes to "abc_xyd_", split MergedWithNext into "abc" "_xyd" "_":
     * "abc" merges a+b (rank 0) then ab+c (rank 1) -> 5. In "_xyd", x and y are
     * unknown (fused into one <unk>) and d has only a byte token; as upstream
     * (BPE::merge_word) the pending <unk> is written after the byte token.
     * "[X]" absorbs the spaces on both sides (lstrip/rstrip).
     */
    long n = encode(t, "abc xyd <s> [X]  c", 18, GM_TOKENIZE_ADD_BOS | GM_TOKENIZE_PARSE_SPECIAL, &ids);
    char got[256] = {0};
    size_t o = 0;
    for (long i = 0; i < n; i++) o += (size_t)snprintf(got + o, sizeof got - o, "%d ", ids[i]);
    CHECK(strcmp(got, "8 5 6 7 0 6 8 10 3 ") == 0, "small ids: %s", got);
    free(ids);
    /* Without PARSE_SPECIAL, "<s>" is plain text: < and > are unknown, s too. */
    n = encode(t, "<s>", 3, 0, &ids);
    CHECK(n == 1 && ids[0] == 0, "fused unk: %ld ids, first %d", n, n > 0 ? ids[0] : -1);
    free(ids);
    size_t len;
    int32_t dec_ids[] = {5, 6, 7, 8};
    char *s = decode(t, dec_ids, 4, 0, &len);
    CHECK(s && strcmp(s, "abc d<s>") == 0, "small decode: %s", s ? s : "");
    free(s);
    CHECK(gm_tokenizer_vocab_size(t) == 11 && gm_tokenizer_token_id(t, "[X]") == 10, "%s", "lookup");
    gm_tokenizer_free(t);
}

/*
 * A normalized added token matches the normalized text, and its pattern is
 * normalized by the whole normalizer (HF refresh_added_tokens), Prepend
 * included: "a b" becomes "_a_b".
 */
static void check_builder_normalized(void) {
    gm_str vocab[] = {str_of("<unk>"), str_of("_"), str_of("a"), str_of("b"), str_of("_a")};
    gm_str merges[] = {str_of("_"), str_of("a")};
    gm_added_token added[] = {{5, str_of("a b"), GM_ADDED_NORMALIZED}};
    gm_tokenizer_spec spec = {.n_tokens = 5, .tokens = vocab, .merges = merges, .n_merges = 1, .unk_id = 0,
                              .added = added, .n_added = 1, .n_norm = 2,
                              .norm = {{GM_NORM_PREPEND, {0}, str_of("_")}, {GM_NORM_REPLACE, str_of(" "), str_of("_")}},
                              .dec_replace_pattern = str_of("_"), .dec_replace_content = str_of(" "),
                              .bos_id = -1, .eos_id = -1};
    gm_tokenizer *t = NULL;
    gm_error err;
    CHECK_OK(gm_tokenizer_build(&spec, "normalized", &t, &err), &err);
    if (!t) return;
    int32_t *ids = NULL;
    long n = encode(t, "a b a", 5, GM_TOKENIZE_ADD_BOS, &ids); /* no bos: ADD_BOS adds nothing */
    CHECK(n == 2 && ids[0] == 5 && ids[1] == 4, "normalized added token: %ld ids", n);
    free(ids);
    gm_tokenizer_free(t);
}

/* Builds the Gemma tokenizer from arrays with merges derived from scores (the GGUF path). */
static void check_builder_from_scores(void) {
    /* Scores that rank tokens as the JSON merges do: the first rank where a token is made. */
    int32_t n_vocab = gm_tokenizer_vocab_size(tok);
    gm_str *vocab = calloc((size_t)n_vocab, sizeof *vocab);
    float *scores = calloc((size_t)n_vocab, sizeof *scores);
    for (int32_t id = 0; id < n_vocab; id++) {
        const gm_tok_entry *e = &tok->entry[id];
        scores[id] = -1e30f;
        if (e->flags & GM_TOKF_MODEL) vocab[id] = (gm_str){tok->arena + e->model_off, e->model_len};
    }
    for (uint32_t i = 0; i <= tok->merge_mask; i++) {
        const gm_tok_merge_slot *m = &tok->merges[i];
        if (m->left != UINT32_MAX && -(float)m->rank > scores[m->merged]) scores[m->merged] = -(float)m->rank;
    }
    size_t n_added = 0;
    gm_added_token *added = calloc((size_t)n_vocab, sizeof *added);
    for (int32_t id = 0; id < n_vocab; id++) {
        const gm_tok_entry *e = &tok->entry[id];
        if (e->flags & GM_TOKF_ADDED)
            added[n_added++] = (gm_added_token){id, {tok->arena + e->text_off, e->text_len},
                                                (e->flags & GM_TOKF_SPECIAL) ? GM_ADDED_SPECIAL : 0};
    }
    gm_tokenizer_spec spec = {.n_tokens = 262144, .tokens = vocab, .scores = scores, .byte_fallback = true,
                              .fuse_unk = true, .unk_id = 3, .added = added, .n_added = n_added, .n_norm = 1,
                              .norm = {{GM_NORM_REPLACE, str_of(" "), str_of("\xE2\x96\x81")}},
                              .dec_replace_pattern = str_of("\xE2\x96\x81"), .dec_replace_content = str_of(" "),
                              .dec_byte_fallback = true, .bos_id = 2, .eos_id = 1};
    gm_tokenizer *t = NULL;
    gm_error err;
    double t0 = now_s();
    CHECK_OK(gm_tokenizer_build(&spec, "arrays", &t, &err), &err);
    printf("built from arrays (merges from scores) in %.3f s\n", now_s() - t0);
    if (t) {
        CHECK(t->n_merges == tok->n_merges, "derived %zu merges, json has %zu", t->n_merges, tok->n_merges);
        check_reference_with(t, "from scores", 1);
    }
    gm_tokenizer_free(t);
    free(vocab);
    free(scores);
    free(added);
}

/*
 * Allocation failures (only when linked with gemma3n_allocfail, which
 * defines the hook): every failing allocation while loading or encoding
 * must give GM_ERR_OUT_OF_MEMORY, leak nothing (ASan) and leave out NULL.
 */
extern void gm_test_fail_allocation_after(long n) __attribute__((weak));

static void check_allocation_failures(void) {
    if (!gm_test_fail_allocation_after) return;
    const char *json =
        "{\"added_tokens\": [{\"id\": 5, \"content\": \"<s>\", \"special\": true}],"
        " \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"_\"},"
        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\","
        " \"pattern\": {\"String\": \"_\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}]},"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, \"a\": 1,"
        " \"b\": 2, \"ab\": 3, \"_\": 4, \"<s>\": 5, \"x\\ny\": 6}, \"merges\": [\"a b\"]}}";
    int failures = 0, bad = 0;
    for (long n = 1; n < 200; n++) {
        gm_tokenizer *t = (gm_tokenizer *)1;
        gm_error err;
        gm_test_fail_allocation_after(n);
        gm_status st = gm_tokenizer_open_json(json, strlen(json), "oom.json", &t, &err);
        gm_test_fail_allocation_after(0);
        if (st == GM_OK) {
            for (long m = 1; m < 8; m++) {
                int32_t ids[8];
                size_t k;
                gm_test_fail_allocation_after(m);
                gm_status st2 = gm_tokenize(t, "ab ab", 5, 0, ids, 8, &k, &err);
                gm_test_fail_allocation_after(0);
                bad += st2 != GM_OK && st2 != GM_ERR_OUT_OF_MEMORY;
                failures += st2 == GM_ERR_OUT_OF_MEMORY;
            }
            gm_tokenizer_free(t);
            break;
        }
        failures++;
        bad += st != GM_ERR_OUT_OF_MEMORY || t != NULL;
    }
    CHECK(failures > 10 && bad == 0, "%d injected failures, %d handled badly", failures, bad);
}

int main(void) {
    gm_error err;
    double t0 = now_s();
    CHECK_OK(gm_tokenizer_open(test_path("tokenizer/tokenizer.json"), &tok, &err), &err);
    printf("tokenizer.json loaded in %.3f s\n", now_s() - t0);
    if (!tok) return gm_test_summary();
    check_reference_with(tok, "tokenizer.json", 1);
    check_lookups();
    check_special_parsing();
    check_buffers();
    check_errors();
    check_byte_fallback_decode();
    check_long_inputs();
    check_random_round_trips();
    check_threads();
    check_builder_small();
    check_builder_normalized();
    check_builder_from_scores();
    check_allocation_failures();
    gm_tokenizer_free(tok);
    return gm_test_summary();
}
