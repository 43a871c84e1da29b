/*
 * cmd_chat.c - `gemma3n chat`: interactive multi-turn chat on stdin/stdout.
 *
 * The conversation lives in one session's KV cache. Each turn evaluates
 * only its new tokens: the opening (<bos>, system prompt, first user turn)
 * from gm_chat_format, and afterwards "<end_of_turn>\n" (the core does not
 * put the stop token that ended the answer into the context) followed by
 * the next formatted user turn and the generation prompt.
 *
 * Ctrl-C sets a flag that the core polls (gm_session_set_cancel_flag):
 * during an answer it stops the answer, at the prompt it quits. Only
 * answers go to stdout; notes and errors go to stderr.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction, getline, isatty */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: gemma3n chat -m PATH [options]\n"
    "\n"
    "Interactive chat: one user message per line on stdin, answers on stdout.\n"
    "The conversation stays in the KV cache; each turn evaluates only its new tokens.\n"
    "\n"
    CLI_MODEL_HELP
    "      --system TEXT    system prompt (merged into the first user turn)\n"
    "  -n, --n-predict N    max tokens per answer (default 0 = until <end_of_turn>)\n"
    "      --n-ctx N        context size in tokens (default: model maximum, at most 4096)\n"
    CLI_KV_TYPE_HELP
    "  -t, --threads N      threads for prompt processing (default: all cores)\n"
    "\n" CLI_SAMPLING_HELP
    "\n"
    "In the chat: /reset forgets the conversation, /exit (or end of input) quits.\n"
    "Ctrl-C stops an answer; Ctrl-C at the prompt quits.\n";

#define CHAT_EXIT_INTERRUPTED 130 /* 128 + SIGINT, as a shell reports it */

typedef struct chat_opts {
    const char *model, *weights, *submodel, *system, *kv_type_name;
    int32_t n_predict, n_ctx, threads, kv_type;
    gm_sampler_params sp;
} chat_opts;

typedef struct chat {
    const char *cmd;
    const chat_opts *o;
    gm_session *s;
    gm_buf text;  /* the current turn's text */
    cli_ids ids;  /* ... and its tokens */
    bool tty;     /* stdin is a terminal: show a prompt */
} chat;

/* The session's cancel flag (const volatile int *): sig_atomic_t must be int. */
static volatile sig_atomic_t interrupted;
_Static_assert(_Generic((sig_atomic_t)0, int: 1, default: 0), "sig_atomic_t is not int");

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void install_sigint_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: Ctrl-C at the prompt must interrupt the read */
    sigaction(SIGINT, &sa, NULL);
}

/* Text and tokens of the next user turn (see the file comment). */
static gm_status turn_tokens(chat *c, const char *line, gm_error *err) {
    bool fresh = gm_session_n_past(c->s) == 0;
    gm_chat_message msgs[2];
    size_t n = 0;
    if (fresh && c->o->system) msgs[n++] = (gm_chat_message){"system", c->o->system};
    msgs[n++] = (gm_chat_message){"user", line};
    c->text.len = 0;
    if (!fresh && !gm_buf_append(&c->text, "<end_of_turn>\n", 14)) return cli_out_of_memory(err);
    gm_status st = cli_chat_format(msgs, n, fresh, &c->text, err);
    if (st != GM_OK) return st;
    return cli_encode(gm_session_model(c->s), NULL, c->text.data, c->text.len, GM_TOKENIZE_PARSE_SPECIAL,
                      &c->ids, err);
}

/* A failed turn: fatal for memory/internal errors, otherwise a note and on to the next line. */
static int report(const chat *c, const gm_error *err) {
    if (err->status == GM_ERR_OUT_OF_MEMORY || err->status == GM_ERR_INTERNAL) return cli_fail_err(c->cmd, err);
    fprintf(stderr, "gemma3n chat: %s\n", err->message);
    if (err->status == GM_ERR_CONTEXT_OVERFLOW) fputs("[/reset starts a new conversation]\n", stderr);
    return CLI_CONTINUE;
}

static int answer(chat *c) {
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = c->o->n_predict;
    cli_gen_result res = {0};
    gm_error err;
    gm_status st = cli_generate(c->s, &gp, stdout, &res, &err);
    if (!res.text.len || res.text.data[res.text.len - 1] != '\n') putchar('\n');
    fflush(stdout);
    int rc = CLI_CONTINUE;
    if (st == GM_ERR_CANCELLED) {
        interrupted = 0;
        fputs("[answer interrupted]\n", stderr);
    } else if (st != GM_OK) {
        rc = report(c, &err);
    } else if (res.finish == GM_FINISH_LENGTH && gm_session_n_past(c->s) >= gm_session_n_ctx(c->s)) {
        fputs("[the context is full: /reset starts a new conversation]\n", stderr);
    }
    cli_gen_result_free(&res);
    return rc;
}

static int user_turn(chat *c, const char *line) {
    gm_error err;
    size_t n_before = gm_session_n_past(c->s);
    gm_status st = turn_tokens(c, line, &err);
    if (st == GM_OK) st = gm_session_eval(c->s, c->ids.v, c->ids.n, &err);
    if (st == GM_OK) return answer(c);
    if (st != GM_ERR_CANCELLED) return report(c, &err);
    /* Ctrl-C while reading the turn: drop its partial tokens. */
    interrupted = 0;
    fputs("[interrupted]\n", stderr);
    st = gm_session_truncate(c->s, n_before, &err);
    return st == GM_OK ? CLI_CONTINUE : report(c, &err);
}

static int handle_line(chat *c, const char *line) {
    if (!*line) return CLI_CONTINUE;
    if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0) return CLI_EXIT_OK;
    if (strcmp(line, "/reset") == 0) {
        gm_session_reset(c->s);
        fputs("[conversation cleared]\n", stderr);
        return CLI_CONTINUE;
    }
    return user_turn(c, line);
}

/* Reads one line without its line ending; -1 at end of input, on error or on Ctrl-C. */
static ssize_t read_line(char **line, size_t *cap) {
    if (interrupted) return -1;
    ssize_t n = getline(line, cap, stdin);
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = 0;
    return n;
}

static int loop(chat *c) {
    char *line = NULL;
    size_t cap = 0;
    int rc = CLI_CONTINUE;
    while (rc == CLI_CONTINUE) {
        if (c->tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t n = read_line(&line, &cap);
        if (n >= 0) {
            rc = handle_line(c, line);
            continue;
        }
        if (c->tty) putchar('\n');
        if (interrupted) rc = CHAT_EXIT_INTERRUPTED;
        else rc = ferror(stdin) ? cli_fail(c->cmd, "cannot read stdin: %s", strerror(errno)) : CLI_EXIT_OK;
    }
    free(line);
    return rc;
}

static int run(const char *cmd, gm_model *m, const chat_opts *o) {
    if (!gm_model_tokenizer(m))
        return cli_fail(cmd, "model has no tokenizer (no tokenizer.json with %s): chat needs one", o->model);
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = o->n_ctx;
    sp.kv_type = o->kv_type;
    sp.sampler = o->sp;
    chat c = {.cmd = cmd, .o = o, .tty = isatty(STDIN_FILENO) != 0};
    gm_error err;
    if (gm_session_new(m, &sp, &c.s, &err) != GM_OK) return cli_fail_err(cmd, &err);
    gm_session_set_cancel_flag(c.s, &interrupted);
    install_sigint_handler();
    if (c.tty) fputs("gemma3n chat: /reset clears the conversation, /exit or Ctrl-D quits, Ctrl-C stops an answer.\n", stderr);
    int rc = loop(&c);
    gm_buf_free(&c.text);
    cli_ids_free(&c.ids);
    gm_session_free(c.s);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    chat_opts o = {.n_predict = 0, .sp = gm_sampler_default_params()};
    const cli_opt opts[] = {
        {"--model", "-m", CLI_STR, &o.model, 0, 0},
        {"--weights", "-w", CLI_STR, &o.weights, 0, 0},
        {"--submodel", NULL, CLI_STR, &o.submodel, 0, 0},
        {"--system", NULL, CLI_STR, &o.system, 0, 0},
        {"--n-predict", "-n", CLI_INT, &o.n_predict, -1, INT32_MAX},
        {"--n-ctx", NULL, CLI_INT, &o.n_ctx, 0, INT32_MAX},
        {"--kv-type", NULL, CLI_STR, &o.kv_type_name, 0, 0},
        {"--threads", "-t", CLI_INT, &o.threads, 0, 4096},
        CLI_SAMPLING_OPTS(&o.sp),
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    int n_pos;
    int rc = cli_parse(argc, argv, opts, usage, NULL, 0, &n_pos);
    if (rc == CLI_CONTINUE) rc = cli_parse_kv_type(argv[0], o.kv_type_name, &o.kv_type);
    gm_model *m = NULL;
    if (rc == CLI_CONTINUE) rc = cli_open_model(argv[0], o.model, o.threads, o.weights, o.submodel, &m);
    if (rc == CLI_CONTINUE) rc = run(argv[0], m, &o);
    gm_model_free(m);
    return rc;
}
