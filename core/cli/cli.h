/*
 * cli.h - what the files of the `gemma3n` command-line tool share.
 *
 *   main.c          subcommand dispatch, --help, --version
 *   cli_util.c      option parsing, error reporting, JSON output, id lists,
 *                   tokenize / chat-format helpers with growing buffers
 *   cmd_generate.c  `generate` and the streaming generation loop
 *   cmd_chat.c      `chat`: interactive multi-turn on stdin/stdout
 *   cmd_tools.c     `tokenize`, `logits`, `info`
 *   cmd_convert.c   `convert` (Hugging Face directory -> GGUF)
 *   cmd_matformer.c `extract`, `submodels` (MatFormer)
 *   cmd_bench.c     `bench` (llama-bench-like timings)
 *
 * Exit codes: 0 success, 1 runtime failure (the core's gm_error message is
 * printed), 2 usage error (bad or missing option). Every message goes to
 * stderr as "gemma3n CMD: ...", and only the command's output to stdout.
 */
#ifndef GM_CLI_H
#define GM_CLI_H

#include "gemma3n.h"
#include "../src/gm_internal.h" /* gm_buf */

#include <stdbool.h>
#include <stdio.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_RUNTIME 1
#define CLI_EXIT_USAGE 2
#define CLI_CONTINUE (-1) /* cli_parse: go on with the command */

/* ---- option parsing ---- */

typedef enum cli_kind {
    CLI_FLAG,  /* int* set to 1 */
    CLI_INT,   /* int32_t*, range [min, max] */
    CLI_FLOAT, /* float*, finite, range [min, max] */
    CLI_U64,   /* uint64_t* (decimal or 0x hex) */
    CLI_STR,   /* const char** (points into argv) */
    CLI_STRS   /* cli_strs*: repeatable, at most GM_MAX_STOP_STRINGS */
} cli_kind;

typedef struct cli_strs {
    const char *v[GM_MAX_STOP_STRINGS];
    int n;
} cli_strs;

typedef struct cli_opt {
    const char *name;  /* "--temp"; NULL ends a table */
    const char *alias; /* "-t" or NULL */
    cli_kind kind;
    void *dst;
    double min, max;   /* CLI_INT / CLI_FLOAT */
} cli_opt;

/*
 * Parses argv[1..argc) (argv[0] is the command name) against `opts`.
 * "--name value", "--name=value" and "-x value" are accepted; "--" ends
 * the options. Other arguments go to `pos` (at most max_pos of them, count
 * in *n_pos). -h/--help prints `usage` to stdout. Returns CLI_CONTINUE, or
 * the exit code to return right away (0 after --help, 2 after a usage
 * error, which it has reported).
 */
int cli_parse(int argc, char **argv, const cli_opt *opts, const char *usage, const char **pos,
              int max_pos, int *n_pos);

/* Help lines of -m and --weights, shared by the commands that load a model. */
#define CLI_MODEL_HELP                                                                   \
    "  -m, --model PATH     Hugging Face model directory (config.json, *.safetensors,\n"  \
    "                       tokenizer.json), e.g. a download of google/gemma-3n-E2B-it,\n" \
    "                       or a .gguf file (gemma3n convert, llama.cpp's converter)\n"   \
    "  -w, --weights FMT    convert the weights at load: stored (default), f32, f16,\n"   \
    "                       bf16, q8_0 or q4_0\n"                                         \
    "      --submodel S     MatFormer submodel: E2B, E4B, a row of `gemma3n submodels`,\n" \
    "                       or a .json file {\"layers_to_skip\": [...], \"ffn_hidden_dims\": [...]}\n"

/* The sampling options shared by `generate` and `chat` (entries of a cli_opt table). */
#define CLI_SAMPLING_OPTS(sp)                                                  \
    {"--temp", NULL, CLI_FLOAT, &(sp)->temperature, 0, 1e6},                   \
    {"--top-k", NULL, CLI_INT, &(sp)->top_k, 0, INT32_MAX},                    \
    {"--top-p", NULL, CLI_FLOAT, &(sp)->top_p, 0, 1},                          \
    {"--min-p", NULL, CLI_FLOAT, &(sp)->min_p, 0, 1},                          \
    {"--repeat-penalty", NULL, CLI_FLOAT, &(sp)->repeat_penalty, 1e-6, 1e6},   \
    {"--repeat-last-n", NULL, CLI_INT, &(sp)->repeat_last_n, -1, INT32_MAX},   \
    {"--seed", NULL, CLI_U64, &(sp)->seed, 0, 0}

#define CLI_SAMPLING_HELP                                                               \
    "sampling:\n"                                                                       \
    "  --temp T             temperature (default 0.8; 0 = greedy)\n"                   \
    "  --top-k K            keep the K most likely tokens (default 40; 0 = off)\n"     \
    "  --top-p P            nucleus sampling (default 0.95; 1 = off)\n"                \
    "  --min-p P            drop tokens below P * p(best) (default 0.05; 0 = off)\n"   \
    "  --repeat-penalty R   penalise repeated tokens (default 1 = off)\n"              \
    "  --repeat-last-n N    tokens the penalty looks back at (default 64; -1 = all)\n" \
    "  --seed S             RNG seed (same seed + same input = same output)\n"

/* ---- errors ---- */

/* "gemma3n CMD: message" + a pointer to --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) GM_PRINTF(2, 3);
/* "gemma3n CMD: message"; returns CLI_EXIT_RUNTIME. */
int cli_fail(const char *cmd, const char *fmt, ...) GM_PRINTF(2, 3);
/* Reports err->message; returns CLI_EXIT_RUNTIME. */
int cli_fail_err(const char *cmd, const gm_error *err);
/* Fills err with GM_ERR_OUT_OF_MEMORY and returns it. */
gm_status cli_out_of_memory(gm_error *err);

/* ---- token id lists ---- */

typedef struct cli_ids {
    int32_t *v;
    size_t n, cap;
} cli_ids;

bool cli_ids_push(cli_ids *a, int32_t id);
bool cli_ids_reserve(cli_ids *a, size_t cap);
void cli_ids_free(cli_ids *a);

/*
 * Parses "2,105,2364" (spaces allowed around ids; "" = no ids). Ids are
 * not checked against a vocabulary here: the core reports those. Returns
 * CLI_CONTINUE or CLI_EXIT_USAGE (reported).
 */
int cli_parse_ids(const char *cmd, const char *text, cli_ids *out);

/* --kv-type NAME ("f32" / "f16"; NULL = the default f32) to a gm_kv_type in *out.
 * Returns CLI_CONTINUE or CLI_EXIT_USAGE (reported). */
int cli_parse_kv_type(const char *cmd, const char *name, int32_t *out);
#define CLI_KV_TYPE_HELP \
    "      --kv-type T      K/V cache element type: f32 (default) or f16 (half the KV memory)\n"

/* ---- model, tokenizer and chat helpers ---- */

/* Reports a missing -m; returns CLI_EXIT_USAGE. */
int cli_no_model(const char *cmd);
/*
 * Opens a model directory or .gguf file with the weights converted to
 * `weights` ("stored", "f32", "q8_0", ...; NULL = as stored) and, when
 * `submodel` is not NULL, selects that MatFormer submodel (a table name or
 * alias such as E2B, or a .json spec). A missing
 * path or a bad format name is a usage error. Returns CLI_CONTINUE or an
 * exit code (reported).
 */
int cli_open_model(const char *cmd, const char *path, int32_t n_threads, const char *weights,
                   const char *submodel, gm_model **out);

/*
 * Tokenizes text[0..len) into out (replacing its contents), growing the
 * buffer as needed. With tok == NULL the model's tokenizer is used (and a
 * model without one fails with GM_ERR_NO_TOKENIZER).
 */
gm_status cli_encode(const gm_model *m, const gm_tokenizer *tok, const char *text, size_t len,
                     unsigned flags, cli_ids *out, gm_error *err);

/* Appends gm_chat_format(..., add_generation_prompt = 1, add_bos) to out. */
gm_status cli_chat_format(const gm_chat_message *msgs, size_t n, int add_bos, gm_buf *out,
                          gm_error *err);

/* ---- JSON output ---- */

/*
 * Writes s[0..n) as a JSON string: quotes, backslashes and control
 * characters escaped, bytes that are not valid UTF-8 written as U+FFFD.
 */
void cli_json_string(FILE *f, const char *s, size_t n);
/* Writes "[1, 2, 3]". */
void cli_json_ids(FILE *f, const int32_t *ids, size_t n);

/* ---- generation (cmd_generate.c) ---- */

typedef struct cli_gen_result {
    cli_ids ids;      /* every sampled token, including a final stop token */
    gm_buf text;      /* concatenated pieces */
    gm_finish finish;
} cli_gen_result;

/*
 * Runs gm_session_generate_begin + gm_session_next to the end. When
 * `stream` is not NULL each piece is written and flushed as it comes (ids
 * separated by spaces for a model without a tokenizer). The result keeps
 * what was produced even when it fails (e.g. GM_ERR_CANCELLED).
 */
gm_status cli_generate(gm_session *s, const gm_generate_params *gp, FILE *stream,
                       cli_gen_result *res, gm_error *err);
void cli_gen_result_free(cli_gen_result *res);

/* ---- subcommands ---- */

int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_info(int argc, char **argv);
int gm_cli_convert(int argc, char **argv); /* cmd_convert.c */
int cmd_extract(int argc, char **argv);    /* cmd_matformer.c */
int cmd_submodels(int argc, char **argv);  /* cmd_matformer.c */
int cmd_bench(int argc, char **argv);      /* cmd_bench.c */

#endif /* GM_CLI_H */
