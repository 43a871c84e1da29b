/*
 * cmd_tools.c - the non-generating subcommands:
 *   tokenize  text -> ids (one text, or a JSON-lines corpus on stdin)
 *   logits    ids -> float32 [n_tokens, vocab] .npy of every position
 *   info      the model's description (gm_model_describe) or its numbers as JSON
 */
#define _POSIX_C_SOURCE 200809L /* getline */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../src/json.h"

/* ------------------------------------------------------------------ */
/* tokenize                                                           */
/* ------------------------------------------------------------------ */

static const char tokenize_usage[] =
    "usage: gemma3n tokenize (-m PATH | --tokenizer FILE) [--bos] [--special] [--jsonl] [TEXT]\n"
    "\n"
    "Prints the token ids of TEXT (or of all of stdin) as a JSON array.\n"
    "\n"
    "  -m, --model PATH       use the tokenizer of a model directory or .gguf file\n"
    "      --tokenizer FILE   use a tokenizer.json file (no weights are loaded)\n"
    "      --bos              prepend <bos>\n"
    "      --special          turn special tokens written in the text into their ids\n"
    "                         (\"<start_of_turn>\" -> 105)\n"
    "      --jsonl            read one JSON string per line on stdin and write one\n"
    "                         JSON array per line (flushed), e.g. to encode a corpus\n";

typedef struct tok_opts {
    const char *model, *tokenizer;
    int bos, special, jsonl;
} tok_opts;

/* The tokenizer to use: `tok` (from --tokenizer) or the model's (m). */
typedef struct encoder {
    const gm_model *m;
    const gm_tokenizer *tok;
    unsigned flags;
} encoder;

static int print_ids(const char *cmd, const encoder *e, const char *text, size_t len, cli_ids *ids,
                     const char *where) {
    gm_error err;
    if (cli_encode(e->m, e->tok, text, len, e->flags, ids, &err) != GM_OK)
        return where ? cli_fail(cmd, "%s: %s", where, err.message) : cli_fail_err(cmd, &err);
    cli_json_ids(stdout, ids->v, ids->n);
    putchar('\n');
    return fflush(stdout) == 0 ? CLI_EXIT_OK : cli_fail(cmd, "cannot write to stdout");
}

/* One --jsonl input line: a JSON string -> its ids on one output line. */
static int encode_json_line(const char *cmd, const encoder *e, const char *line, size_t n, size_t lineno,
                            cli_ids *ids) {
    char where[48];
    snprintf(where, sizeof where, "stdin line %zu", lineno);
    gm_json doc;
    gm_error err;
    if (gm_json_parse(line, n, where, &doc, &err) != GM_OK) return cli_fail_err(cmd, &err);
    size_t len = 0;
    bool is_string = gm_json_kind(&doc, 0) == GM_JSON_STRING;
    char *text = is_string ? gm_json_string_dup(&doc, 0, &len) : NULL;
    gm_json_free(&doc);
    if (!is_string) return cli_fail(cmd, "%s: expected a JSON string such as \"some text\"", where);
    if (!text) return cli_fail(cmd, "%s: out of memory", where);
    int rc = print_ids(cmd, e, text, len, ids, where);
    gm_free(text);
    return rc;
}

static int encode_jsonl(const char *cmd, const encoder *e) {
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    cli_ids ids = {0};
    int rc = CLI_EXIT_OK;
    ssize_t n;
    while (rc == CLI_EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0)
        rc = encode_json_line(cmd, e, line, (size_t)n, ++lineno, &ids);
    if (rc == CLI_EXIT_OK && ferror(stdin)) rc = cli_fail(cmd, "cannot read stdin: %s", strerror(errno));
    free(line);
    cli_ids_free(&ids);
    return rc;
}

static bool read_all(FILE *f, gm_buf *out) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (!gm_buf_append(out, chunk, n)) return false;
    return !ferror(f);
}

static int encode_one(const char *cmd, const encoder *e, const char *text) {
    gm_buf in = {0};
    if (!text && !read_all(stdin, &in)) {
        gm_buf_free(&in);
        return cli_fail(cmd, "cannot read stdin");
    }
    cli_ids ids = {0};
    int rc = text ? print_ids(cmd, e, text, strlen(text), &ids, NULL) : print_ids(cmd, e, in.data, in.len, &ids, NULL);
    cli_ids_free(&ids);
    gm_buf_free(&in);
    return rc;
}

static int check_tokenize_opts(const char *cmd, const tok_opts *o, int n_pos) {
    if (!o->model == !o->tokenizer)
        return cli_usage_error(cmd, o->model ? "-m and --tokenizer exclude each other"
                                             : "no tokenizer: pass -m PATH or --tokenizer FILE");
    if (o->jsonl && n_pos) return cli_usage_error(cmd, "--jsonl reads stdin: do not pass TEXT");
    return CLI_CONTINUE;
}

int cmd_tokenize(int argc, char **argv) {
    tok_opts o = {0};
    const cli_opt opts[] = {
        {"--model", "-m", CLI_STR, &o.model, 0, 0},
        {"--tokenizer", NULL, CLI_STR, &o.tokenizer, 0, 0},
        {"--bos", NULL, CLI_FLAG, &o.bos, 0, 0},
        {"--special", NULL, CLI_FLAG, &o.special, 0, 0},
        {"--jsonl", NULL, CLI_FLAG, &o.jsonl, 0, 0},
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    const char *text = NULL;
    int n_pos;
    int rc = cli_parse(argc, argv, opts, tokenize_usage, &text, 1, &n_pos);
    if (rc == CLI_CONTINUE) rc = check_tokenize_opts(argv[0], &o, n_pos);
    if (rc != CLI_CONTINUE) return rc;
    gm_model *m = NULL;
    gm_tokenizer *tok = NULL;
    gm_error err;
    if (o.model) rc = cli_open_model(argv[0], o.model, 1, NULL, NULL, &m);
    else if (gm_tokenizer_open(o.tokenizer, &tok, &err) != GM_OK) rc = cli_fail_err(argv[0], &err);
    if (rc == CLI_CONTINUE) {
        encoder e = {m, tok, (o.bos ? GM_TOKENIZE_ADD_BOS : 0u) | (o.special ? GM_TOKENIZE_PARSE_SPECIAL : 0u)};
        rc = o.jsonl ? encode_jsonl(argv[0], &e) : encode_one(argv[0], &e, text);
    }
    gm_tokenizer_free(tok);
    gm_model_free(m);
    return rc;
}

/* ------------------------------------------------------------------ */
/* logits                                                             */
/* ------------------------------------------------------------------ */

static const char logits_usage[] =
    "usage: gemma3n logits -m PATH (--tokens IDS | -p TEXT) -o OUT.npy [options]\n"
    "\n"
    "Runs the prompt through the model in one pass and writes the logits of every\n"
    "position as a float32 [n_tokens, vocab] .npy file (row i = the prediction\n"
    "after token i).\n"
    "\n"
    CLI_MODEL_HELP
    "      --tokens IDS     token ids, e.g. 2,105,2364\n"
    "  -p, --prompt TEXT    text (tokenized with <bos> prepended)\n"
    "  -o, --output FILE    the .npy file to write\n"
    "      --n-ctx N        context size (default: the number of tokens)\n"
    CLI_KV_TYPE_HELP
    "  -t, --threads N      threads (default: all cores)\n";

typedef struct logits_opts {
    const char *model, *weights, *submodel, *tokens, *prompt, *output, *kv_type_name;
    int32_t n_ctx, threads, kv_type;
} logits_opts;

/* .npy v1.0: magic, version, header length, a Python dict literal padded to 64 bytes, data. */
static bool write_npy_f32(FILE *f, const float *x, size_t rows, size_t cols) {
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                     rows, cols);
    size_t pad = (64 - (10 + (size_t)n + 1) % 64) % 64;
    size_t hlen = (size_t)n + pad + 1;
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xFF),
                                   (unsigned char)(hlen >> 8)};
    fwrite(pre, 1, sizeof pre, f);
    fprintf(f, "%s%*s\n", dict, (int)pad, "");
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe == 1) return fwrite(x, sizeof *x, rows * cols, f) == rows * cols;
    for (size_t i = 0; i < rows * cols; i++) { /* big-endian host: write little-endian */
        unsigned char b[4];
        memcpy(b, &x[i], 4);
        unsigned char le[4] = {b[3], b[2], b[1], b[0]};
        if (fwrite(le, 1, 4, f) != 4) return false;
    }
    return true;
}

static int save_logits(const char *cmd, const char *path, const float *x, size_t rows, size_t cols) {
    FILE *f = fopen(path, "wb");
    if (!f) return cli_fail(cmd, "cannot create %s: %s", path, strerror(errno));
    bool ok = write_npy_f32(f, x, rows, cols);
    ok = fclose(f) == 0 && ok;
    if (ok) return CLI_EXIT_OK;
    remove(path);
    return cli_fail(cmd, "cannot write %s", path);
}

static int run_logits(const char *cmd, gm_model *m, const logits_opts *o, const cli_ids *ids) {
    gm_session_params sp = gm_session_default_params();
    sp.keep_all_logits = 1;
    sp.kv_type = o->kv_type;
    sp.n_ctx = o->n_ctx ? o->n_ctx : (int32_t)GM_MIN(ids->n, (size_t)INT32_MAX);
    gm_session *s;
    gm_error err;
    if (gm_session_new(m, &sp, &s, &err) != GM_OK) return cli_fail_err(cmd, &err);
    int rc;
    if (gm_session_eval(s, ids->v, ids->n, &err) != GM_OK) {
        rc = cli_fail_err(cmd, &err);
    } else {
        size_t rows = 0;
        const float *all = gm_session_all_logits(s, &rows);
        gm_model_info info;
        gm_model_get_info(m, &info);
        rc = save_logits(cmd, o->output, all, rows, (size_t)info.vocab_size);
    }
    gm_session_free(s);
    return rc;
}

static int logits_ids(const char *cmd, const gm_model *m, const logits_opts *o, cli_ids *ids) {
    if (o->tokens) return cli_parse_ids(cmd, o->tokens, ids);
    gm_error err;
    if (cli_encode(m, NULL, o->prompt, strlen(o->prompt), GM_TOKENIZE_ADD_BOS, ids, &err) != GM_OK)
        return cli_fail_err(cmd, &err);
    return CLI_CONTINUE;
}

int cmd_logits(int argc, char **argv) {
    logits_opts o = {0};
    const cli_opt opts[] = {
        {"--model", "-m", CLI_STR, &o.model, 0, 0},
        {"--weights", "-w", CLI_STR, &o.weights, 0, 0},
        {"--submodel", NULL, CLI_STR, &o.submodel, 0, 0},
        {"--tokens", NULL, CLI_STR, &o.tokens, 0, 0},
        {"--prompt", "-p", CLI_STR, &o.prompt, 0, 0},
        {"--output", "-o", CLI_STR, &o.output, 0, 0},
        {"--n-ctx", NULL, CLI_INT, &o.n_ctx, 0, INT32_MAX},
        {"--kv-type", NULL, CLI_STR, &o.kv_type_name, 0, 0},
        {"--threads", "-t", CLI_INT, &o.threads, 0, 4096},
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    const char *cmd = argv[0];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, logits_usage, NULL, 0, &n_pos);
    if (rc != CLI_CONTINUE) return rc;
    if (!o.model) return cli_no_model(cmd);
    if (!o.tokens == !o.prompt)
        return cli_usage_error(cmd, o.tokens ? "--tokens and -p exclude each other" : "no input: pass --tokens IDS or -p TEXT");
    if (!o.output) return cli_usage_error(cmd, "no output file: pass -o OUT.npy");
    if ((rc = cli_parse_kv_type(cmd, o.kv_type_name, &o.kv_type)) != CLI_CONTINUE) return rc;
    gm_model *m = NULL;
    cli_ids ids = {0};
    rc = cli_open_model(cmd, o.model, o.threads, o.weights, o.submodel, &m);
    if (rc == CLI_CONTINUE) rc = logits_ids(cmd, m, &o, &ids);
    if (rc == CLI_CONTINUE) rc = run_logits(cmd, m, &o, &ids);
    cli_ids_free(&ids);
    gm_model_free(m);
    return rc;
}

/* ------------------------------------------------------------------ */
/* info                                                               */
/* ------------------------------------------------------------------ */

static const char info_usage[] =
    "usage: gemma3n info -m PATH [--json] [--submodel S]\n"
    "\n"
    "Describes a model: configuration, parameter counts, tensor dtypes, tokenizer.\n"
    "\n"
    "  -m, --model PATH  model directory or .gguf file\n"
    "      --json        print the main numbers (gm_model_info) as one JSON object\n"
    "      --submodel S  also report the MatFormer submodel S (layers, effective parameters)\n";

static void print_info_json(const gm_model *m) {
    gm_model_info i;
    gm_model_get_info(m, &i);
    printf("{\"vocab_size\": %d, \"hidden_size\": %d, \"num_layers\": %d, \"num_heads\": %d, "
           "\"num_kv_heads\": %d, \"head_dim\": %d, \"num_kv_shared_layers\": %d, \"sliding_window\": %d, "
           "\"hidden_size_per_layer_input\": %d, \"altup_num_inputs\": %d, \"laurel_rank\": %d, "
           "\"bos_id\": %d, \"eos_id\": %d, \"end_of_turn_id\": %d, \"max_position_embeddings\": %d, "
           "\"final_logit_softcap\": %g, \"n_params_text\": %lld, \"n_params_file\": %lld, \"weight_dtype\": ",
           i.vocab_size, i.hidden_size, i.num_layers, i.num_heads, i.num_kv_heads, i.head_dim,
           i.num_kv_shared_layers, i.sliding_window, i.hidden_size_per_layer_input, i.altup_num_inputs,
           i.laurel_rank, i.bos_id, i.eos_id, i.end_of_turn_id, i.max_position_embeddings,
           (double)i.final_logit_softcap, (long long)i.n_params_text, (long long)i.n_params_file);
    cli_json_string(stdout, i.weight_dtype ? i.weight_dtype : "", i.weight_dtype ? strlen(i.weight_dtype) : 0);
    printf(", \"has_tokenizer\": %s}\n", gm_model_tokenizer(m) ? "true" : "false");
}

static int print_description(const char *cmd, const gm_model *m) {
    gm_error err;
    size_t len = 0;
    gm_model_describe(m, NULL, 0, &len, &err); /* size query */
    char *buf = malloc(len + 1);
    if (!buf) return cli_fail(cmd, "out of memory");
    int rc = CLI_EXIT_OK;
    if (gm_model_describe(m, buf, len + 1, &len, &err) != GM_OK) rc = cli_fail_err(cmd, &err);
    else fwrite(buf, 1, len, stdout);
    free(buf);
    return rc;
}

/* "submodel: S, N layers skipped, X M effective parameters (full model: Y M)". */
static int print_submodel(const char *cmd, const gm_model *m, const char *name) {
    gm_submodel_spec spec;
    int64_t sub = 0, full = 0;
    gm_error err;
    gm_model_get_submodel(m, &spec);
    if (gm_model_check_submodel(m, &spec, &sub, &err) != GM_OK || gm_model_check_submodel(m, NULL, &full, &err) != GM_OK)
        return cli_fail_err(cmd, &err);
    printf("submodel: %s, %d layers skipped, %.3f M effective parameters (full model: %.3f M)\n", name,
           spec.n_layers_to_skip, sub / 1e6, full / 1e6);
    return CLI_EXIT_OK;
}

int cmd_info(int argc, char **argv) {
    const char *model = NULL, *submodel = NULL;
    int json = 0;
    const cli_opt opts[] = {
        {"--model", "-m", CLI_STR, &model, 0, 0},
        {"--submodel", NULL, CLI_STR, &submodel, 0, 0},
        {"--json", NULL, CLI_FLAG, &json, 0, 0},
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    int n_pos;
    int rc = cli_parse(argc, argv, opts, info_usage, NULL, 0, &n_pos);
    gm_model *m = NULL;
    if (rc == CLI_CONTINUE) rc = cli_open_model(argv[0], model, 1, NULL, submodel, &m);
    if (rc != CLI_CONTINUE) return rc;
    rc = CLI_EXIT_OK;
    if (json) print_info_json(m);
    else rc = print_description(argv[0], m);
    if (rc == CLI_EXIT_OK && submodel && !json) rc = print_submodel(argv[0], m, submodel);
    gm_model_free(m);
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) rc = cli_fail(argv[0], "cannot write to stdout");
    return rc;
}
