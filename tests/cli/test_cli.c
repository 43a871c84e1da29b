/*
 * test_cli.c - runs the `gemma3n` executable and the C examples as a user
 * would, and checks their stdout, stderr, exit status and files.
 *
 *   test_cli GEMMA3N_EXE CASE [ARG] [EXAMPLE_EXE]
 *
 * Cases: golden SET (generate --json ids == generated_ids*.npy), logits SET
 * (logits .npy == logits_prefill / logits_full_sequence within 1e-3), info,
 * errors, help, tokenize_jsonl, chat_json, chat_session, chat_sigint,
 * example_generate EXE, example_chat EXE. Every run also fails on a
 * sanitizer report or a death by signal.
 */
#include "json.h"
#include "test_util.h"

#include <signal.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOGIT_TOL 1e-3
#define TINY_CHAT GM_TEST_DATA "/tiny_chat" /* text_tiny_a weights + a 512-token tokenizer */
#define EXIT_SKIP 77

static const char *cli;       /* the gemma3n executable */
static char tmp_dir[] = "/tmp/gm_test_cli_XXXXXX";

/* ------------------------------------------------------------------ */
/* Running a program                                                  */
/* ------------------------------------------------------------------ */

typedef struct run_result {
    int status;   /* exit code; -signal when killed */
    char *out, *err;
    size_t out_len;
} run_result;

static char in_path[512], out_path[512], err_path[512]; /* a run's stdin, stdout, stderr */

/* A file in the temporary directory (a ring of 4 buffers: use the result soon). */
static char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir, name);
    return buf[k];
}

static char *slurp(const char *path, size_t *len) {
    char *data = NULL;
    size_t size = 0;
    gm_error err;
    if (gm_read_file(path, &data, &size, &err) != GM_OK) return NULL;
    if (len) *len = size;
    return data;
}

static void run_free(run_result *r) {
    gm_free(r->out);
    gm_free(r->err);
    memset(r, 0, sizeof *r);
}

/* execv with a const argv (copied: execv's prototype predates const). Never returns. */
static void exec_argv(const char *const *argv) {
    char *v[64];
    size_t n = 0;
    for (; argv[n] && n < 63; n++) memcpy(&v[n], &argv[n], sizeof v[n]);
    v[n] = NULL;
    execv(v[0], v);
    _exit(98);
}

/* Runs argv (NULL-terminated) with `input` on stdin; stdout/stderr land in temp files. */
static void run(run_result *r, const char *input, const char *const *argv) {
    FILE *f = fopen(in_path, "wb");
    if (input) fputs(input, f);
    fclose(f);
    fflush(stdout), fflush(stderr); /* or the child would write our buffered output again */
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(in_path, "rb", stdin) || !freopen(out_path, "wb", stdout) || !freopen(err_path, "wb", stderr))
            _exit(99);
        exec_argv(argv);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws);
    r->out = slurp(out_path, &r->out_len);
    r->err = slurp(err_path, NULL);
    CHECK(r->out && r->err, "%s: no output files", argv[1]);
    if (!r->out || !r->err) return;
    CHECK(!strstr(r->err, "Sanitizer") && !strstr(r->err, "runtime error:"), "%s %s: sanitizer report:\n%s",
          argv[0], argv[1], r->err);
    CHECK(r->status >= 0, "%s %s: killed by signal %d", argv[0], argv[1], -r->status);
}

/* "1,2,3" from an int64 .npy (at most `limit` ids; `limit` < 0 = all). */
static char *ids_arg(const npy_array *a, long limit) {
    size_t n = limit < 0 || (size_t)limit > a->count ? a->count : (size_t)limit;
    char *s = calloc(1, n * 24 + 1);
    for (size_t i = 0, o = 0; i < n; i++)
        o += (size_t)sprintf(s + o, i ? ",%lld" : "%lld", (long long)((const int64_t *)a->data)[i]);
    return s;
}

static const char *golden_path(const char *set, const char *file) {
    static char buf[2][1024];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/golden/%s/%s", GM_TEST_DATA, set, file);
    return buf[k];
}

/* ------------------------------------------------------------------ */
/* JSON output of `generate --json`                                    */
/* ------------------------------------------------------------------ */

typedef struct gen_json {
    int64_t ids[4096];
    size_t n_ids;
    char text[16384];
    char finish[16];
} gen_json;

/* Parses one generate --json object; false (and CHECK failures) when malformed. */
static bool parse_gen_json(const char *out, size_t len, gen_json *g) {
    gm_json doc;
    gm_error err;
    memset(g, 0, sizeof *g);
    gm_status st = gm_json_parse(out, len, "generate --json", &doc, &err);
    CHECK(st == GM_OK, "%s", err.message);
    if (st != GM_OK) return false;
    int ids = gm_json_get(&doc, 0, "ids"), text = gm_json_get(&doc, 0, "text");
    int fin = gm_json_get(&doc, 0, "finish_reason");
    bool ok = ids >= 0 && gm_json_kind(&doc, ids) == GM_JSON_ARRAY && text >= 0 &&
              gm_json_kind(&doc, text) == GM_JSON_STRING && fin >= 0 && gm_json_kind(&doc, fin) == GM_JSON_STRING;
    CHECK(ok, "bad keys in %.*s", (int)len, out);
    for (int i = ok ? gm_json_first(&doc, ids) : -1; i >= 0 && g->n_ids < 4096; i = gm_json_next_elem(&doc, ids, i))
        ok = ok && gm_json_int64(&doc, i, &g->ids[g->n_ids++]);
    ok = ok && gm_json_string_copy(&doc, text, g->text, sizeof g->text) != (size_t)-1;
    ok = ok && gm_json_string_copy(&doc, fin, g->finish, sizeof g->finish) != (size_t)-1;
    CHECK(ok, "bad values in %.*s", (int)len, out);
    gm_json_free(&doc);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Cases                                                              */
/* ------------------------------------------------------------------ */

/* generate --json (and the plain streamed ids) on `model` == the golden greedy ids of `set`. */
static void check_golden_ids(const char *set, const char *model, const char *input_file, const char *ids_file) {
    npy_array in, want;
    if (npy_load(golden_path(set, input_file), &in) || npy_load(golden_path(set, ids_file), &want)) {
        CHECK(0, "cannot load %s golden files", set);
        return;
    }
    int failed_before = gm_test_failed;
    char *ids = ids_arg(&in, -1), n[16];
    snprintf(n, sizeof n, "%zu", want.count);
    const char *argv[] = {cli, "generate", "-m", model, "--tokens", ids, "-n", n, "--temp", "0", "--ignore-eos", "--json", NULL};
    run_result r;
    run(&r, NULL, argv);
    gen_json g;
    CHECK(r.status == 0, "%s: exit %d: %s", set, r.status, r.err);
    if (r.status == 0 && parse_gen_json(r.out, r.out_len, &g)) {
        CHECK(g.n_ids == want.count, "%s: %zu ids, want %zu", set, g.n_ids, want.count);
        for (size_t i = 0; i < g.n_ids && i < want.count; i++)
            CHECK(g.ids[i] == ((const int64_t *)want.data)[i], "%s %s[%zu]: %lld", set, ids_file, i, (long long)g.ids[i]);
        CHECK(strcmp(g.finish, "length") == 0 && g.text[0] == 0, "%s: finish %s text '%s'", set, g.finish, g.text);
    }
    run_free(&r);
    argv[11] = NULL; /* without --json: the ids are streamed, separated by spaces */
    run(&r, NULL, argv);
    char *expect = ids_arg(&want, -1);
    for (char *c = expect; *c; c++) *c = *c == ',' ? ' ' : *c;
    CHECK(r.status == 0 && r.out_len == strlen(expect) + 1 && memcmp(r.out, expect, strlen(expect)) == 0,
          "%s stream: '%s', want '%s'", set, r.out, expect);
    printf("  %-12s %-22s %s (%s)\n", set, ids_file, gm_test_failed == failed_before ? "ok" : "FAILED",
           strstr(model, ".gguf") ? "gguf" : "directory");
    free(expect);
    run_free(&r);
    free(ids);
    npy_free(&in);
    npy_free(&want);
}

/* The directory, then the same weights after `gemma3n convert` to GGUF. */
static void case_golden(const char *set) {
    char dir[1024]; /* golden_path's buffers are reused by the checks */
    snprintf(dir, sizeof dir, "%s", golden_path(set, ""));
    check_golden_ids(set, dir, "input_ids.npy", "generated_ids.npy");
    check_golden_ids(set, dir, "input_ids_long.npy", "generated_ids_long.npy");
    const char *gguf = tmp_path("model.gguf");
    run_result r;
    run(&r, NULL, (const char *const[]){cli, "convert", dir, gguf, "--quiet", NULL});
    CHECK(r.status == 0, "convert %s: exit %d: %s", set, r.status, r.err);
    if (r.status == 0) check_golden_ids(set, gguf, "input_ids.npy", "generated_ids.npy");
    run_free(&r);
}

/* logits -o FILE over `n_prompt` prompt ids + `n_gen` generated ids vs `ref_file`. */
static void check_logits(const char *set, const char *input_file, long n_gen, const char *ref_file) {
    npy_array in, gen, ref, got;
    if (npy_load(golden_path(set, input_file), &in) || npy_load(golden_path(set, "generated_ids.npy"), &gen) ||
        npy_load(golden_path(set, ref_file), &ref)) {
        CHECK(0, "cannot load %s golden files", set);
        return;
    }
    char *p = ids_arg(&in, -1), *g = ids_arg(&gen, n_gen);
    char *ids = calloc(1, strlen(p) + strlen(g) + 2);
    sprintf(ids, n_gen > 0 ? "%s,%s" : "%s", p, g);
    const char *argv[] = {cli, "logits", "-m", golden_path(set, ""), "--tokens", ids, "-o", tmp_path("l.npy"), NULL};
    run_result r;
    run(&r, NULL, argv);
    CHECK(r.status == 0, "%s logits: exit %d: %s", set, r.status, r.err);
    int loaded = r.status == 0 ? npy_load(argv[7], &got) : -1;
    CHECK(r.status != 0 || loaded == 0, "%s: cannot load %s", ref_file, argv[7]);
    if (loaded == 0) {
        bool shape = strcmp(got.dtype, "<f4") == 0 && got.ndim == 2 && got.count == ref.count &&
                     got.shape[0] == ref.shape[0];
        CHECK(shape, "%s: got %s [%ld, %ld], want [%ld, %ld]", ref_file, got.dtype, got.shape[0], got.shape[1],
              ref.shape[0], ref.shape[1]);
        double d = shape ? max_abs_diff(got.data, ref.data, ref.count) : INFINITY;
        CHECK(d <= LOGIT_TOL, "%s %s: max |diff| %.3g", set, ref_file, d);
        printf("  %-12s %-26s max|diff| %.2e\n", set, ref_file, d);
        npy_free(&got);
    }
    run_free(&r);
    free(ids), free(p), free(g);
    npy_free(&in), npy_free(&gen), npy_free(&ref);
}

static void case_logits(const char *set) {
    check_logits(set, "input_ids.npy", 0, "logits_prefill.npy");
    check_logits(set, "input_ids.npy", 7, "logits_full_sequence.npy");
    check_logits(set, "input_ids_long.npy", 0, "logits_prefill_long.npy");
}

/* Expects exit `status` and `needle` in stderr. */
static void expect_fail(int status, const char *needle, const char *input, const char *const *argv) {
    run_result r;
    run(&r, input, argv);
    CHECK(r.status == status && r.err && strstr(r.err, needle) && r.out_len == 0,
          "%s %s %s: exit %d (want %d), stderr '%s' (want '%s'), stdout '%s'", argv[1], argv[2] ? argv[2] : "",
          argv[3] ? argv[3] : "", r.status, status, r.err, needle, r.out);
    run_free(&r);
}

static void case_errors(void) {
    const char *a = golden_path("text_tiny_a", ""), *tok = TINY_CHAT "/tokenizer.json";
#define FAILS(status, needle, ...) expect_fail(status, needle, NULL, (const char *const[]){cli, __VA_ARGS__, NULL})
    FAILS(1, "/nonexistent/model", "generate", "-m", "/nonexistent/model", "--tokens", "2");
    FAILS(2, "'abc'", "generate", "-m", a, "--tokens", "abc");
    FAILS(2, "--tokens", "generate", "-m", a, "--tokens", "2,,3");
    FAILS(1, "outside the vocabulary", "generate", "-m", a, "--tokens", "2,512");
    FAILS(1, "outside the vocabulary", "logits", "-m", a, "--tokens", "-1", "-o", tmp_path("x.npy"));
    FAILS(1, "empty prompt", "generate", "-m", a, "--tokens", "");
    FAILS(1, "empty prompt", "generate", "-m", a, "-p", "");
    FAILS(1, "model has no tokenizer", "generate", "-m", a, "-p", "hi");
    FAILS(1, "model has no tokenizer", "tokenize", "-m", a, "hi");
    FAILS(1, "model has no tokenizer", "chat", "-m", a);
    FAILS(2, "unknown option '--bogus'", "generate", "-m", a, "--tokens", "2", "--bogus");
    FAILS(2, "unknown command", "frobnicate");
    FAILS(2, "needs a value", "generate", "-m", a, "--tokens", "2", "--temp");
    FAILS(2, "not a (finite) number", "generate", "-m", a, "--tokens", "2", "--temp", "warm");
    FAILS(2, "not an integer", "generate", "-m", a, "--tokens", "2", "-n", "1x");
    FAILS(2, "out of range", "generate", "-m", a, "--tokens", "2", "--top-p", "1.5");
    FAILS(2, "-m PATH", "generate", "--tokens", "2");
    FAILS(2, "unknown weight format", "generate", "-m", a, "--tokens", "2", "--weights", "q9");
    FAILS(2, "'bf16' is not a K/V cache type", "generate", "-m", a, "--tokens", "2", "--kv-type", "bf16");
    FAILS(2, "'F16' is not a K/V cache type", "bench", "-m", a, "-p", "4", "-n", "2", "--kv-type", "F16");
    FAILS(2, "not a K/V cache type", "logits", "-m", a, "--tokens", "2", "-o", tmp_path("x.npy"), "--kv-type", "");
    FAILS(2, "not a K/V cache type", "chat", "-m", a, "--kv-type", "q8_0");
    FAILS(2, "no prompt", "generate", "-m", a);
    FAILS(2, "-o OUT.npy", "logits", "-m", a, "--tokens", "2");
    FAILS(2, "unexpected argument", "info", "-m", a, "extra");
    FAILS(2, "-m PATH or --tokenizer FILE", "tokenize", "hi");
    FAILS(1, "context overflow", "generate", "-m", a, "--tokens", "2,3,4", "--n-ctx", "2");
    FAILS(1, "/nonexistent/out.npy", "logits", "-m", a, "--tokens", "2", "-o", "/nonexistent/out.npy");
#undef FAILS
    const char *const bad_jsonl[] = {cli, "tokenize", "--tokenizer", tok, "--jsonl", NULL};
    run_result r;
    run(&r, "\"ok\"\n{\"not\": \"a string\"}\n\"never\"\n", bad_jsonl);
    CHECK(r.status == 1 && strstr(r.err, "line 2") && r.out[0] == '[' && strchr(r.out, '\n') == r.out + r.out_len - 1,
          "jsonl: exit %d, stderr %s, stdout %s", r.status, r.err, r.out);
    run_free(&r);
    expect_fail(1, "line 1", "\"unterminated\n", bad_jsonl);
    expect_fail(1, "line 1", "\"\\ud800 \xff\"\n", bad_jsonl); /* invalid UTF-8 reaches the tokenizer */
}

static void expect_out(const char *needle, const char *const *argv) {
    run_result r;
    run(&r, NULL, argv);
    CHECK(r.status == 0 && strstr(r.out, needle), "%s %s: exit %d, stdout lacks '%s': %s", argv[1],
          argv[2] ? argv[2] : "", r.status, needle, r.err);
    run_free(&r);
}

static void case_info_and_help(void) {
    const char *a = golden_path("text_tiny_a", ""), *b = golden_path("text_tiny_b", "");
    expect_out("layers: 8", (const char *const[]){cli, "info", "-m", a, NULL});
    expect_out("\"num_layers\": 8", (const char *const[]){cli, "info", "-m", a, "--json", NULL});
    expect_out("layers: ", (const char *const[]){cli, "info", "-m", b, NULL});
    expect_out(GEMMA3N_VERSION_STRING, (const char *const[]){cli, "--version", NULL});
    expect_out("\"kv_type\": \"f16\"", (const char *const[]){cli, "bench", "-m", a, "-p", "8", "-n", "4", "-r", "1",
                                                             "--kv-type", "f16", "--json", NULL});
    expect_out("generate", (const char *const[]){cli, "--help", NULL});
    const char *cmds[] = {"generate", "chat", "tokenize", "logits", "info"};
    for (size_t i = 0; i < 5; i++) {
        expect_out("usage: gemma3n", (const char *const[]){cli, cmds[i], "--help", NULL});
        expect_out("usage: gemma3n", (const char *const[]){cli, "help", cmds[i], NULL});
    }
}

/* True when the JSON array line[0..len) holds the same ids as array `want` of doc. */
static bool same_ids(const gm_json *doc, int want, const char *line, size_t len) {
    gm_json got;
    gm_error err;
    if (gm_json_parse(line, len, "tokenize output", &got, &err) != GM_OK) return false;
    bool same = gm_json_kind(&got, 0) == GM_JSON_ARRAY && got.tok[0].size == doc->tok[want].size;
    for (int i = gm_json_first(&got, 0), j = gm_json_first(doc, want); same && i >= 0 && j >= 0;
         i = gm_json_next_elem(&got, 0, i), j = gm_json_next_elem(doc, want, j)) {
        int64_t a, b;
        same = gm_json_int64(&got, i, &a) && gm_json_int64(doc, j, &b) && a == b;
    }
    gm_json_free(&got);
    return same;
}

/* Every sample of reference_encodings.json through one `tokenize --jsonl` process. */
static void check_jsonl(const gm_json *doc, const char *ids_key, bool bos) {
    gm_buf in = {0};
    for (int s = gm_json_first(doc, 0); s >= 0; s = gm_json_next_elem(doc, 0, s)) {
        const gm_json_token *t = &doc->tok[gm_json_get(doc, s, "text")];
        gm_buf_printf(&in, "\"%.*s\"\n", (int)t->len, doc->src + t->start); /* still escaped: valid JSON */
    }
    const char *tok = GM_TEST_DATA "/tokenizer/tokenizer.json";
    const char *argv[] = {cli, "tokenize", "--tokenizer", tok, "--special", "--jsonl", bos ? "--bos" : NULL, NULL};
    run_result r;
    run(&r, in.data, argv);
    CHECK(r.status == 0, "tokenize --jsonl: exit %d: %s", r.status, r.err);
    const char *line = r.out ? r.out : "";
    size_t n_ok = 0, n = 0;
    for (int s = gm_json_first(doc, 0); s >= 0 && *line; s = gm_json_next_elem(doc, 0, s), n++) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        bool same = same_ids(doc, gm_json_get(doc, s, ids_key), line, len);
        CHECK(same, "%s sample %zu: got %.*s", ids_key, n, (int)GM_MIN(len, 200), line);
        n_ok += same;
        line = nl ? nl + 1 : line + len;
    }
    CHECK(n == (size_t)doc->tok[0].size, "%zu output lines for %u samples", n, doc->tok[0].size);
    printf("  tokenize --jsonl%s: %zu/%zu samples equal %s\n", bos ? " --bos" : "", n_ok, n, ids_key);
    run_free(&r);
    gm_buf_free(&in);
}

static int case_tokenize_jsonl(void) {
    size_t size;
    char *src = slurp(GM_TEST_DATA "/tokenizer/reference_encodings.json", &size);
    if (!src) return EXIT_SKIP;
    gm_json doc;
    gm_error err;
    gm_status st = gm_json_parse(src, size, "reference_encodings.json", &doc, &err);
    CHECK(st == GM_OK, "%s", err.message);
    if (st == GM_OK) {
        check_jsonl(&doc, "ids_plain", false);
        check_jsonl(&doc, "ids_with_bos", true);
        gm_json_free(&doc);
    }
    gm_free(src);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Text-level cases on tests/data/tiny_chat (random weights)          */
/* ------------------------------------------------------------------ */

/* generate ... --json on tiny_chat; false when it failed. */
static bool gen(gen_json *g, const char *const *argv) {
    run_result r;
    run(&r, NULL, argv);
    CHECK(r.status == 0, "%s: exit %d: %s", argv[5], r.status, r.err);
    bool ok = r.status == 0 && parse_gen_json(r.out, r.out_len, g);
    run_free(&r);
    return ok;
}

/* --chat -p: valid JSON; the streamed text equals the JSON text; --stop cuts it. */
static void case_chat_json(void) {
    gen_json g, h;
    const char *argv[] = {cli, "generate", "-m", TINY_CHAT, "-p", "hi", "--chat", "-n", "12", "--seed", "3", "--json", NULL, NULL, NULL};
    if (!gen(&g, argv)) return;
    CHECK(g.n_ids >= 1 && (!strcmp(g.finish, "stop") || !strcmp(g.finish, "length")), "%zu ids, %s", g.n_ids, g.finish);
    argv[11] = NULL;
    run_result r;
    run(&r, NULL, argv);
    CHECK(r.status == 0 && r.out_len == strlen(g.text) && memcmp(r.out, g.text, r.out_len) == 0,
          "streamed '%s' != JSON text '%s'", r.out, g.text);
    run_free(&r);
    /* Greedy plain prompt, then stop at a string taken from its own text. */
    const char *plain[] = {cli, "generate", "-m", TINY_CHAT, "-p", "hello", "-n", "16", "--temp", "0", "--json", NULL, NULL, NULL};
    if (!gen(&g, plain) || strlen(g.text) < 4) return;
    size_t k = 1; /* the stop string: the whole UTF-8 character starting at k >= 1 */
    while (g.text[k] && ((unsigned char)g.text[k] & 0xC0) == 0x80) k++;
    size_t clen = 1;
    while (g.text[k + clen] && ((unsigned char)g.text[k + clen] & 0xC0) == 0x80) clen++;
    char stop[8] = {0};
    memcpy(stop, g.text + k, GM_MIN(clen, sizeof stop - 1));
    plain[11] = "--stop", plain[12] = stop;
    if (!gen(&h, plain)) return;
    size_t cut = (size_t)(strstr(g.text, stop) - g.text);
    CHECK(!strcmp(h.finish, "stop") && strlen(h.text) == cut && !strncmp(h.text, g.text, cut),
          "--stop '%s': '%s' (%s), want '%.*s'", stop, h.text, h.finish, (int)cut, g.text);
    printf("  generate --chat --json / stream / --stop ok\n");
}

static void append_ids(gm_model *m, const char *text, int32_t *ids, size_t *n) {
    size_t k = 0;
    gm_error err;
    CHECK_OK(gm_model_tokenize(m, text, strlen(text), GM_TOKENIZE_PARSE_SPECIAL, ids + *n, 4096 - *n, &k, &err), &err);
    *n += k;
}

static void append_text(char *dst, size_t cap, const char *text) {
    size_t len = strlen(dst);
    snprintf(dst + len, cap - len, "%s%s", text, *text && text[strlen(text) - 1] == '\n' ? "" : "\n");
}

/*
 * chat keeps the KV cache across turns: its second answer must equal a
 * fresh greedy generation over the whole conversation's tokens, and /reset
 * must give the first answer again.
 */
static void case_chat_session(void) {
    gen_json a1, a2;
    const char *g1[] = {cli, "generate", "-m", TINY_CHAT, "-p", "hi", "--chat", "-n", "6", "--temp", "0", "--json", NULL};
    if (!gen(&a1, g1)) return;
    gm_model *m;
    gm_error err;
    gm_status st = gm_model_open(TINY_CHAT, NULL, &m, &err);
    CHECK(st == GM_OK, "%s", err.message);
    if (st != GM_OK) return;
    static int32_t ids[4096];
    size_t n = 0;
    append_ids(m, "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", ids, &n);
    for (size_t i = 0; i < a1.n_ids - (strcmp(a1.finish, "stop") == 0); i++) ids[n++] = (int32_t)a1.ids[i];
    append_ids(m, "<end_of_turn>\n<start_of_turn>user\n1 2 3<end_of_turn>\n<start_of_turn>model\n", ids, &n);
    gm_model_free(m);
    npy_array conv = {.count = n, .data = calloc(n, sizeof(int64_t))};
    for (size_t i = 0; i < n; i++) ((int64_t *)conv.data)[i] = ids[i];
    char *list = ids_arg(&conv, -1);
    const char *g2[] = {cli, "generate", "-m", TINY_CHAT, "--tokens", list, "-n", "6", "--temp", "0", "--json", NULL};
    bool ok = gen(&a2, g2);
    free(list);
    npy_free(&conv);
    if (!ok) return;
    char want[3 * 16384 + 4] = "";
    append_text(want, sizeof want, a1.text);
    append_text(want, sizeof want, a2.text);
    append_text(want, sizeof want, a1.text);
    const char *chat[] = {cli, "chat", "-m", TINY_CHAT, "-n", "6", "--temp", "0", NULL};
    run_result r;
    run(&r, "hi\n1 2 3\n/reset\nhi\n", chat); /* a second turn whose answer depends on the first */
    CHECK(r.status == 0 && strcmp(r.out, want) == 0, "chat: exit %d, stdout '%s', want '%s' (%s)", r.status, r.out,
          want, r.err);
    printf("  chat turns == generate over the whole conversation: %s\n", strcmp(r.out, want) ? "NO" : "ok");
    run_free(&r);
}

typedef struct child {
    pid_t pid;
    int in, out, err; /* our ends of its stdin, stdout, stderr */
} child;

static void spawn(child *c, const char *const *argv) {
    int p[3][2];
    for (int i = 0; i < 3; i++)
        if (pipe(p[i]) != 0) abort();
    fflush(stdout), fflush(stderr);
    c->pid = fork();
    if (c->pid == 0) {
        dup2(p[0][0], 0), dup2(p[1][1], 1), dup2(p[2][1], 2);
        for (int i = 0; i < 3; i++) close(p[i][0]), close(p[i][1]);
        exec_argv(argv);
    }
    close(p[0][0]), close(p[1][1]), close(p[2][1]);
    c->in = p[0][1], c->out = p[1][0], c->err = p[2][0];
}

/* Reads fd until `needle` has been seen (true) or EOF / `seconds` passed (false). */
static bool wait_for(int fd, const char *needle, int seconds) {
    char acc[8192];
    size_t n = 0;
    for (int waited = 0; waited < seconds * 10;) {
        struct timeval tv = {0, 100000};
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        if (select(fd + 1, &set, NULL, NULL, &tv) <= 0) {
            waited++;
            continue;
        }
        ssize_t k = read(fd, acc + n, sizeof acc - 1 - n);
        if (k <= 0) return false;
        n += (size_t)k;
        acc[n] = 0;
        if (strstr(acc, needle)) return true;
        if (n > sizeof acc / 2) { /* keep the tail */
            memmove(acc, acc + n - 64, 64);
            n = 64;
        }
    }
    return false;
}

/* Ctrl-C during an answer stops it (chat goes on); Ctrl-C at the prompt quits (exit 130). */
static void case_chat_sigint(void) {
    /* Greedy "hi" on tiny_chat repeats " g" until the 4096-token context is full: a long answer. */
    const char *argv[] = {cli, "chat", "-m", TINY_CHAT, "--temp", "0", NULL};
    child c;
    spawn(&c, argv);
    CHECK(write(c.in, "hi\n", 3) == 3, "write");
    CHECK(wait_for(c.out, " g g", 120), "no answer started");
    kill(c.pid, SIGINT);
    CHECK(wait_for(c.err, "[answer interrupted]", 120), "answer not interrupted");
    CHECK(write(c.in, "/reset\n", 7) == 7, "write");
    CHECK(wait_for(c.err, "[conversation cleared]", 120), "chat did not go on");
    kill(c.pid, SIGINT); /* at the prompt (or about to read it) */
    int ws = 0;
    for (int i = 0; i < 600 && waitpid(c.pid, &ws, WNOHANG) == 0; i++) usleep(100000);
    if (waitpid(c.pid, &ws, WNOHANG) == 0) { /* still running: fail, do not hang */
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &ws, 0);
    }
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 130, "chat after Ctrl-C at the prompt: status 0x%x", ws);
    close(c.in), close(c.out), close(c.err);
    printf("  chat Ctrl-C: answer stopped, then quit with 130\n");
}

static void case_example_generate(const char *exe) {
    npy_array in, want;
    if (npy_load(golden_path("text_tiny_a", "input_ids.npy"), &in) ||
        npy_load(golden_path("text_tiny_a", "generated_ids.npy"), &want)) {
        CHECK(0, "cannot load the text_tiny_a golden files");
        return;
    }
    char *ids = ids_arg(&in, -1), *expect = ids_arg(&want, -1);
    for (char *p = expect; *p; p++) *p = *p == ',' ? ' ' : *p;
    const char *argv[] = {exe, golden_path("text_tiny_a", ""), "--tokens", ids, "8", NULL};
    run_result r;
    run(&r, NULL, argv);
    CHECK(r.status == 0 && strncmp(r.out, expect, strlen(expect)) == 0, "example_generate: exit %d, '%s' (%s)",
          r.status, r.out, r.err);
    run_free(&r);
    const char *text[] = {exe, TINY_CHAT, "Once upon a time", "8", NULL};
    run(&r, NULL, text);
    CHECK(r.status == 0 && strstr(r.out, "[8 tokens") , "example_generate text: exit %d '%s' (%s)", r.status, r.out, r.err);
    run_free(&r);
    free(ids), free(expect), npy_free(&in), npy_free(&want);
}

static void case_example_chat(const char *exe) {
    const char *argv[] = {exe, TINY_CHAT, "6", NULL};
    run_result r;
    run(&r, "hi\nhow are you?\nbye\n", argv);
    int lines = 0;
    for (const char *p = r.out ? r.out : ""; *p; p++) lines += *p == '\n';
    CHECK(r.status == 0 && lines >= 3, "example_chat: exit %d, %d lines (%s)", r.status, lines, r.err);
    run_free(&r);
}

/* generate --json --submodel SPEC on the full matformer_tiny model == the golden ids of that slice. */
static void check_submodel_ids(const char *slice) {
    char spec[1024], results[64], model[1024];
    snprintf(spec, sizeof spec, "%s/golden/matformer_tiny/%s.json", GM_TEST_DATA, slice);
    snprintf(results, sizeof results, "matformer_tiny/%s", slice);
    snprintf(model, sizeof model, "%s/golden/matformer_tiny", GM_TEST_DATA);
    npy_array in, want;
    if (npy_load(golden_path(results, "input_ids.npy"), &in) || npy_load(golden_path(results, "generated_ids.npy"), &want)) {
        CHECK(0, "cannot load %s golden files", results);
        return;
    }
    char *ids = ids_arg(&in, -1), n[16];
    snprintf(n, sizeof n, "%zu", want.count);
    const char *argv[] = {cli, "generate", "-m", model, "--submodel", spec, "--tokens", ids, "-n", n,
                          "--temp", "0", "--ignore-eos", "--json", NULL};
    run_result r;
    run(&r, NULL, argv);
    gen_json g;
    CHECK(r.status == 0, "%s: exit %d: %s", slice, r.status, r.err);
    if (r.status == 0 && parse_gen_json(r.out, r.out_len, &g)) {
        CHECK(g.n_ids == want.count, "%s: %zu ids", slice, g.n_ids);
        for (size_t i = 0; i < g.n_ids && i < want.count; i++)
            CHECK(g.ids[i] == ((const int64_t *)want.data)[i], "--submodel %s: id %zu = %lld", slice, i, (long long)g.ids[i]);
    }
    run_free(&r);
    free(ids);
    npy_free(&in);
    npy_free(&want);
}

/* MatFormer: --submodel at run time, extract to a directory and to GGUF, submodels, errors. */
static void case_matformer(void) {
    char full[900], spec_a[1024];
    snprintf(full, sizeof full, "%s/golden/matformer_tiny", GM_TEST_DATA);
    snprintf(spec_a, sizeof spec_a, "%s/slice_A.json", full);
    check_submodel_ids("slice_A");
    check_submodel_ids("slice_B");
    check_submodel_ids("slice_C");
    const char *dir = tmp_path("slice_A"), *gguf = tmp_path("slice_A.gguf");
    run_result r;
    run(&r, NULL, (const char *const[]){cli, "extract", "--submodel", spec_a, full, dir, NULL});
    CHECK(r.status == 0, "extract: exit %d: %s", r.status, r.err);
    run_free(&r);
    check_golden_ids("matformer_tiny/slice_A", dir, "input_ids.npy", "generated_ids.npy");
    run(&r, NULL, (const char *const[]){cli, "extract", "--submodel", spec_a, full, gguf, NULL});
    CHECK(r.status == 0, "extract to gguf: exit %d: %s", r.status, r.err);
    run_free(&r);
    check_golden_ids("matformer_tiny/slice_A", gguf, "input_ids.npy", "generated_ids.npy");
    run(&r, NULL, (const char *const[]){cli, "submodels", NULL});
    int lines = 0;
    for (const char *p = r.out ? r.out : ""; *p; p++) lines += *p == '\n';
    CHECK(r.status == 0 && lines == 17 && strstr(r.out, "Config for official E2B Model"), "submodels: %d lines", lines);
    run_free(&r);
    expect_out("3 layers skipped", (const char *const[]){cli, "info", "-m", full, "--submodel",
                                                         golden_path("matformer_tiny", "slice_C.json"), NULL});
    expect_fail(2, "unknown submodel 'E9B'", NULL, (const char *const[]){cli, "generate", "-m", full, "--submodel", "E9B", "--tokens", "2", NULL});
    expect_fail(1, "layers_to_skip[0] = 20 is not a layer", NULL,
                (const char *const[]){cli, "logits", "-m", full, "--submodel", "E2B", "--tokens", "2", "-o", tmp_path("x.npy"), NULL});
    expect_fail(2, "--submodel is required", NULL, (const char *const[]){cli, "extract", full, dir, NULL});
}

/* bench --json: one object with the documented keys and sane values. */
static void case_bench(void) {
    run_result r;
    const char *argv[] = {cli, "bench", "-m", golden_path("text_tiny_a", ""), "-p", "16", "-n", "8", "-r", "2", "--json", NULL};
    run(&r, NULL, argv);
    CHECK(r.status == 0, "bench: exit %d: %s", r.status, r.err);
    gm_json doc;
    gm_error err;
    if (r.status == 0 && gm_json_parse(r.out, r.out_len, "bench --json", &doc, &err) == GM_OK) {
        const char *keys[] = {"pp_tok_s", "tg_tok_s", "load_s", "ttft_s", "peak_rss_mb"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            double v = -1;
            CHECK(gm_json_number(&doc, gm_json_get(&doc, 0, keys[i]), &v) && v >= 0, "bench --json: %s = %g", keys[i], v);
        }
        gm_json_free(&doc);
    } else {
        CHECK(0, "bench --json output is not JSON: %s", r.out);
    }
    run_free(&r);
    expect_fail(2, "-p", NULL, (const char *const[]){cli, "bench", "-m", golden_path("text_tiny_a", ""), "-p", "0", NULL});
}

static bool run_chat_case(const char *c, const char *arg) {
    if (strcmp(c, "chat_json") == 0) case_chat_json();
    else if (strcmp(c, "chat_session") == 0) case_chat_session();
    else if (strcmp(c, "chat_sigint") == 0) case_chat_sigint();
    else if (strcmp(c, "example_generate") == 0) case_example_generate(arg);
    else if (strcmp(c, "example_chat") == 0) case_example_chat(arg);
    else return false;
    return true;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s GEMMA3N_EXE CASE [ARG]\n", argv[0]);
        return 2;
    }
    cli = argv[1];
    const char *c = argv[2], *arg = argc > 3 ? argv[3] : "";
    if (!mkdtemp(tmp_dir)) return 2;
    snprintf(in_path, sizeof in_path, "%s/stdin", tmp_dir);
    snprintf(out_path, sizeof out_path, "%s/stdout", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmp_dir);
    int rc = 0;
    if (strcmp(c, "golden") == 0) case_golden(arg);
    else if (strcmp(c, "logits") == 0) case_logits(arg);
    else if (strcmp(c, "errors") == 0) case_errors();
    else if (strcmp(c, "info") == 0) case_info_and_help();
    else if (strcmp(c, "tokenize_jsonl") == 0) rc = case_tokenize_jsonl();
    else if (strcmp(c, "matformer") == 0) case_matformer();
    else if (strcmp(c, "bench") == 0) case_bench();
    else if (!run_chat_case(c, arg)) CHECK(0, "unknown case %s", c);
    char cleanup[600];
    snprintf(cleanup, sizeof cleanup, "rm -rf '%s'", tmp_dir);
    if (system(cleanup) != 0) fprintf(stderr, "cannot remove %s\n", tmp_dir);
    return rc ? rc : gm_test_summary();
}
