/*
 * cmd_generate.c - `gemma3n generate`: complete one prompt, streaming the
 * text as it is produced, or print one JSON object at the end (--json).
 * Also the generation loop that `chat` reuses.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: gemma3n generate -m PATH (-p TEXT | --tokens IDS) [options]\n"
    "\n"
    "Completes a prompt and streams the new text to stdout as it is produced.\n"
    "\n"
    CLI_MODEL_HELP
    "  -p, --prompt TEXT    prompt text (tokenized with <bos> prepended)\n"
    "      --tokens IDS     prompt as token ids, e.g. 2,105,2364 (no tokenizer needed)\n"
    "      --chat           send -p as one user turn in the Gemma chat template\n"
    "      --system TEXT    with --chat: a system prompt\n"
    "  -n, --n-predict N    max new tokens (default 256; 0 = until a stop or the context is full)\n"
    "      --stop STR       stop when STR appears (repeatable, up to 8; STR is not printed)\n"
    "      --ignore-eos     keep going past <eos> / <end_of_turn>\n"
    "      --n-ctx N        context size in tokens (default: model maximum, at most 4096)\n"
    CLI_KV_TYPE_HELP
    "  -t, --threads N      threads for prompt processing (default: all cores)\n"
    "      --json           print nothing while generating, then one JSON object:\n"
    "                       {\"ids\": [...], \"text\": \"...\", \"finish_reason\": \"stop\"|\"length\"}\n"
    "                       ids = every sampled token, including the stop token that ended it\n"
    "  -v, --verbose        print timings to stderr\n"
    "\n" CLI_SAMPLING_HELP
    "\n"
    "A model without tokenizer.json prints the generated ids, separated by spaces.\n";

typedef struct gen_opts {
    const char *model, *weights, *submodel, *prompt, *tokens, *system, *kv_type_name;
    int32_t n_predict, n_ctx, threads, kv_type;
    int chat, json, ignore_eos, verbose;
    cli_strs stop;
    gm_sampler_params sp;
} gen_opts;

/* ------------------------------------------------------------------ */
/* The generation loop (shared with chat)                             */
/* ------------------------------------------------------------------ */


static void write_piece(FILE *f, const gm_step *step, bool has_tokenizer, size_t n_ids) {
    if (has_tokenizer) fwrite(step->text, 1, step->text_len, f);
    else if (step->token >= 0) fprintf(f, n_ids > 1 ? " %d" : "%d", step->token);
    fflush(f);
}

gm_status cli_generate(gm_session *s, const gm_generate_params *gp, FILE *stream,
                       cli_gen_result *res, gm_error *err) {
    bool has_tokenizer = gm_model_tokenizer(gm_session_model(s)) != NULL;
    res->finish = GM_FINISH_NONE;
    gm_status st = gm_session_generate_begin(s, gp, err);
    while (st == GM_OK) {
        gm_step step;
        st = gm_session_next(s, &step, err);
        if (st != GM_OK) break;
        if (step.token >= 0 && !cli_ids_push(&res->ids, step.token)) return cli_out_of_memory(err);
        if (step.text_len && !gm_buf_append(&res->text, step.text, step.text_len)) return cli_out_of_memory(err);
        if (stream) write_piece(stream, &step, has_tokenizer, res->ids.n);
        if (step.finish != GM_FINISH_NONE) {
            res->finish = step.finish;
            break;
        }
    }
    return st;
}

void cli_gen_result_free(cli_gen_result *res) {
    cli_ids_free(&res->ids);
    gm_buf_free(&res->text);
    memset(res, 0, sizeof *res);
}

/* ------------------------------------------------------------------ */
/* generate                                                           */
/* ------------------------------------------------------------------ */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Usage checks that need no model; parses --tokens into ids. */
static int check_opts(const char *cmd, gen_opts *o, cli_ids *ids) {
    if (!o->model) return cli_no_model(cmd);
    if (!o->prompt == !o->tokens)
        return cli_usage_error(cmd, o->prompt ? "-p and --tokens exclude each other"
                                              : "no prompt: pass -p TEXT or --tokens IDS");
    if (o->chat && !o->prompt) return cli_usage_error(cmd, "--chat needs -p TEXT");
    if (o->system && !o->chat) return cli_usage_error(cmd, "--system needs --chat");
    if (o->prompt && !*o->prompt) return cli_fail(cmd, "empty prompt: -p needs some text");
    int rc = cli_parse_kv_type(cmd, o->kv_type_name, &o->kv_type);
    if (rc != CLI_CONTINUE) return rc;
    return o->tokens ? cli_parse_ids(cmd, o->tokens, ids) : CLI_CONTINUE;
}

/* Tokenizes -p (plain: <bos> + text; --chat: the formatted turn, specials parsed). */
static int prompt_ids(const char *cmd, const gm_model *m, const gen_opts *o, cli_ids *ids) {
    if (!o->prompt) return CLI_CONTINUE;
    gm_error err;
    gm_status st;
    if (o->chat) {
        gm_chat_message msgs[2];
        size_t n = 0;
        if (o->system) msgs[n++] = (gm_chat_message){"system", o->system};
        msgs[n++] = (gm_chat_message){"user", o->prompt};
        gm_buf text = {0};
        st = cli_chat_format(msgs, n, 1, &text, &err);
        if (st == GM_OK) st = cli_encode(m, NULL, text.data, text.len, GM_TOKENIZE_PARSE_SPECIAL, ids, &err);
        gm_buf_free(&text);
    } else {
        st = cli_encode(m, NULL, o->prompt, strlen(o->prompt), GM_TOKENIZE_ADD_BOS, ids, &err);
    }
    return st == GM_OK ? CLI_CONTINUE : cli_fail_err(cmd, &err);
}

static void print_json(const cli_gen_result *res) {
    fputs("{\"ids\": ", stdout);
    cli_json_ids(stdout, res->ids.v, res->ids.n);
    fputs(", \"text\": ", stdout);
    cli_json_string(stdout, res->text.data, res->text.len);
    printf(", \"finish_reason\": \"%s\"}\n", res->finish == GM_FINISH_STOP ? "stop" : "length");
}

/* What follows the streamed text: a newline for id lists, and on a terminal. */
static void end_stream(const gm_model *m, const cli_gen_result *res) {
    bool ids_only = gm_model_tokenizer(m) == NULL;
    bool open_line = res->text.len && res->text.data[res->text.len - 1] != '\n';
    if (ids_only || (open_line && isatty(STDOUT_FILENO))) putchar('\n');
}

static void print_timings(size_t n_prompt, double t_prompt, size_t n_gen, double t_gen) {
    fprintf(stderr, "gemma3n generate: prompt %zu tokens in %.3f s (%.1f tok/s), generated %zu tokens in %.3f s (%.1f tok/s)\n",
            n_prompt, t_prompt, t_prompt > 0 ? n_prompt / t_prompt : 0.0, n_gen, t_gen,
            t_gen > 0 ? n_gen / t_gen : 0.0);
}

static int run(const char *cmd, gm_model *m, const gen_opts *o, const cli_ids *prompt) {
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = o->n_ctx;
    sp.kv_type = o->kv_type;
    sp.sampler = o->sp;
    gm_session *s;
    gm_error err;
    if (gm_session_new(m, &sp, &s, &err) != GM_OK) return cli_fail_err(cmd, &err);
    double t0 = now_seconds();
    gm_status st = gm_session_eval(s, prompt->v, prompt->n, &err);
    double t1 = now_seconds();
    cli_gen_result res = {0};
    if (st == GM_OK) {
        gm_generate_params gp = gm_generate_default_params();
        gp.max_tokens = o->n_predict;
        gp.ignore_eos = o->ignore_eos;
        for (int i = 0; i < o->stop.n; i++) gp.stop[i] = o->stop.v[i];
        st = cli_generate(s, &gp, o->json ? NULL : stdout, &res, &err);
    }
    double t2 = now_seconds();
    int rc = CLI_EXIT_OK;
    if (st != GM_OK) rc = cli_fail_err(cmd, &err);
    else if (o->json) print_json(&res);
    else end_stream(m, &res);
    if (o->verbose) print_timings(prompt->n, t1 - t0, res.ids.n, t2 - t1);
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) rc = cli_fail(cmd, "cannot write to stdout");
    cli_gen_result_free(&res);
    gm_session_free(s);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    gen_opts o = {.n_predict = 256, .sp = gm_sampler_default_params()};
    const cli_opt opts[] = {
        {"--model", "-m", CLI_STR, &o.model, 0, 0},
        {"--weights", "-w", CLI_STR, &o.weights, 0, 0},
        {"--submodel", NULL, CLI_STR, &o.submodel, 0, 0},
        {"--prompt", "-p", CLI_STR, &o.prompt, 0, 0},
        {"--tokens", NULL, CLI_STR, &o.tokens, 0, 0},
        {"--chat", NULL, CLI_FLAG, &o.chat, 0, 0},
        {"--system", NULL, CLI_STR, &o.system, 0, 0},
        {"--n-predict", "-n", CLI_INT, &o.n_predict, -1, INT32_MAX},
        {"--stop", NULL, CLI_STRS, &o.stop, 0, 0},
        {"--ignore-eos", NULL, CLI_FLAG, &o.ignore_eos, 0, 0},
        {"--n-ctx", NULL, CLI_INT, &o.n_ctx, 0, INT32_MAX},
        {"--kv-type", NULL, CLI_STR, &o.kv_type_name, 0, 0},
        {"--threads", "-t", CLI_INT, &o.threads, 0, 4096},
        {"--json", NULL, CLI_FLAG, &o.json, 0, 0},
        {"--verbose", "-v", CLI_FLAG, &o.verbose, 0, 0},
        CLI_SAMPLING_OPTS(&o.sp),
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    int n_pos;
    int rc = cli_parse(argc, argv, opts, usage, NULL, 0, &n_pos);
    cli_ids prompt = {0};
    if (rc == CLI_CONTINUE) rc = check_opts(argv[0], &o, &prompt);
    gm_model *m = NULL;
    if (rc == CLI_CONTINUE) rc = cli_open_model(argv[0], o.model, o.threads, o.weights, o.submodel, &m);
    if (rc == CLI_CONTINUE) rc = prompt_ids(argv[0], m, &o, &prompt);
    if (rc == CLI_CONTINUE) rc = run(argv[0], m, &o, &prompt);
    gm_model_free(m);
    cli_ids_free(&prompt);
    return rc;
}
