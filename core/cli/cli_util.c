/*
 * cli_util.c - option parsing, error reporting, JSON output and the
 * growing-buffer wrappers around the core's "size query" calls.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../src/utf8.h"

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

static void vreport(const char *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "gemma3n%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Run 'gemma3n %s%s--help' for usage.\n", cmd ? cmd : "", cmd ? " " : "");
    return CLI_EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, fmt, ap);
    va_end(ap);
    return CLI_EXIT_RUNTIME;
}

int cli_fail_err(const char *cmd, const gm_error *err) {
    return cli_fail(cmd, "%s", err->message[0] ? err->message : gm_status_name(err->status));
}

/* ------------------------------------------------------------------ */
/* Option parsing                                                     */
/* ------------------------------------------------------------------ */

static const cli_opt *find_opt(const cli_opt *opts, const char *arg, size_t len) {
    for (const cli_opt *o = opts; o->name; o++) {
        if (strlen(o->name) == len && memcmp(o->name, arg, len) == 0) return o;
        if (o->alias && strlen(o->alias) == len && memcmp(o->alias, arg, len) == 0) return o;
    }
    return NULL;
}

static int parse_int(const char *cmd, const cli_opt *o, const char *name, const char *v) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno == ERANGE)
        return cli_usage_error(cmd, "%s: '%s' is not an integer", name, v);
    if (x < o->min || x > o->max)
        return cli_usage_error(cmd, "%s: %s is out of range [%.0f, %.0f]", name, v, o->min, o->max);
    *(int32_t *)o->dst = (int32_t)x;
    return CLI_CONTINUE;
}

static int parse_float(const char *cmd, const cli_opt *o, const char *name, const char *v) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x))
        return cli_usage_error(cmd, "%s: '%s' is not a (finite) number", name, v);
    if (x < o->min || x > o->max)
        return cli_usage_error(cmd, "%s: %s is out of range [%g, %g]", name, v, o->min, o->max);
    *(float *)o->dst = (float)x;
    return CLI_CONTINUE;
}

static int parse_u64(const char *cmd, const cli_opt *o, const char *name, const char *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 0);
    if (end == v || *end || errno == ERANGE || strchr(v, '-'))
        return cli_usage_error(cmd, "%s: '%s' is not a non-negative integer", name, v);
    *(uint64_t *)o->dst = (uint64_t)x;
    return CLI_CONTINUE;
}

static int set_value(const char *cmd, const cli_opt *o, const char *name, const char *v) {
    switch (o->kind) {
    case CLI_INT: return parse_int(cmd, o, name, v);
    case CLI_FLOAT: return parse_float(cmd, o, name, v);
    case CLI_U64: return parse_u64(cmd, o, name, v);
    case CLI_STR: *(const char **)o->dst = v; return CLI_CONTINUE;
    case CLI_STRS: {
        cli_strs *s = o->dst;
        if (s->n == GM_MAX_STOP_STRINGS)
            return cli_usage_error(cmd, "%s: at most %d values", name, GM_MAX_STOP_STRINGS);
        s->v[s->n++] = v;
        return CLI_CONTINUE;
    }
    case CLI_FLAG: break;
    }
    return cli_usage_error(cmd, "%s: internal error (option kind)", name);
}

/* One option at argv[*i]; advances *i past its value. */
static int parse_option(const char *cmd, const cli_opt *opts, int argc, char **argv, int *i) {
    const char *arg = argv[*i];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    char name[64]; /* the option as typed, for messages */
    snprintf(name, sizeof name, "%.*s", (int)name_len, arg);
    const cli_opt *o = find_opt(opts, arg, name_len);
    if (!o) return cli_usage_error(cmd, "unknown option '%s'", name);
    if (o->kind == CLI_FLAG) {
        if (eq) return cli_usage_error(cmd, "%s takes no value", name);
        *(int *)o->dst = 1;
        return CLI_CONTINUE;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
        if (*i + 1 >= argc) return cli_usage_error(cmd, "option %s needs a value", name);
        value = argv[++*i];
    }
    return set_value(cmd, o, name, value);
}

int cli_parse(int argc, char **argv, const cli_opt *opts, const char *usage, const char **pos,
              int max_pos, int *n_pos) {
    const char *cmd = argv[0];
    bool options_done = false;
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        }
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
        } else if (!options_done && a[0] == '-' && a[1] != 0) {
            int rc = parse_option(cmd, opts, argc, argv, &i);
            if (rc != CLI_CONTINUE) return rc;
        } else {
            if (*n_pos >= max_pos) return cli_usage_error(cmd, "unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
        }
    }
    return CLI_CONTINUE;
}

/* ------------------------------------------------------------------ */
/* Token id lists                                                     */
/* ------------------------------------------------------------------ */

bool cli_ids_reserve(cli_ids *a, size_t cap) {
    if (cap <= a->cap) return true;
    if (cap > SIZE_MAX / sizeof *a->v) return false;
    int32_t *v = realloc(a->v, cap * sizeof *v);
    if (!v) return false;
    a->v = v;
    a->cap = cap;
    return true;
}

bool cli_ids_push(cli_ids *a, int32_t id) {
    if (a->n == a->cap && !cli_ids_reserve(a, a->cap ? a->cap * 2 : 64)) return false;
    a->v[a->n++] = id;
    return true;
}

void cli_ids_free(cli_ids *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

static const char *skip_spaces(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

int cli_parse_kv_type(const char *cmd, const char *name, int32_t *out) {
    *out = name ? gm_kv_type_from_name(name) : GM_KV_F32;
    if (*out < 0) return cli_usage_error(cmd, "--kv-type: '%s' is not a K/V cache type (f32 or f16)", name);
    return CLI_CONTINUE;
}

int cli_parse_ids(const char *cmd, const char *text, cli_ids *out) {
    out->n = 0;
    const char *s = skip_spaces(text);
    if (!*s) return CLI_CONTINUE;
    for (size_t k = 1;; k++) {
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        const char *after = skip_spaces(end);
        if (end == s || errno == ERANGE || x < INT32_MIN || x > INT32_MAX || (*after && *after != ','))
            return cli_usage_error(cmd, "--tokens: item %zu is not a token id in '%s' (want e.g. 2,105,2364)", k,
                                   text);
        if (!cli_ids_push(out, (int32_t)x)) return cli_fail(cmd, "out of memory");
        if (!*after) return CLI_CONTINUE;
        s = skip_spaces(after + 1);
    }
}

/* ------------------------------------------------------------------ */
/* Model, tokenizer and chat helpers                                  */
/* ------------------------------------------------------------------ */

int cli_no_model(const char *cmd) {
    return cli_usage_error(cmd, "no model given: pass -m PATH, a Hugging Face model directory "
                                "(config.json + *.safetensors [+ tokenizer.json]) or a .gguf file");
}

int cli_open_model(const char *cmd, const char *path, int32_t n_threads, const char *weights,
                   const char *submodel, gm_model **out) {
    if (!path) return cli_no_model(cmd);
    gm_model_params mp = gm_model_default_params();
    mp.n_threads = n_threads;
    gm_error err;
    if (weights && gm_weight_format_parse(weights, &mp.weights, &err) != GM_OK)
        return cli_usage_error(cmd, "--weights: %s", err.message);
    gm_submodel_spec spec;
    if (submodel && gm_submodel_resolve(submodel, &spec, &err) != GM_OK)
        return cli_usage_error(cmd, "--submodel: %s", err.message);
    if (gm_model_open(path, &mp, out, &err) != GM_OK) return cli_fail_err(cmd, &err);
    if (submodel && gm_model_select_submodel(*out, &spec, &err) != GM_OK) {
        gm_model_free(*out);
        *out = NULL;
        return cli_fail(cmd, "--submodel %s: %s", submodel, err.message);
    }
    return CLI_CONTINUE;
}

gm_status cli_out_of_memory(gm_error *err) {
    err->status = GM_ERR_OUT_OF_MEMORY;
    snprintf(err->message, sizeof err->message, "out of memory");
    return err->status;
}

gm_status cli_encode(const gm_model *m, const gm_tokenizer *tok, const char *text, size_t len,
                     unsigned flags, cli_ids *out, gm_error *err) {
    /* A token covers at least one byte, so len + a few (bos) nearly always fits at once. */
    size_t want = len + 8;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!cli_ids_reserve(out, want)) return cli_out_of_memory(err);
        size_t n = 0;
        gm_status st = tok ? gm_tokenize(tok, text, len, flags, out->v, out->cap, &n, err)
                           : gm_model_tokenize(m, text, len, flags, out->v, out->cap, &n, err);
        if (st == GM_OK) {
            out->n = n;
            return GM_OK;
        }
        if (st != GM_ERR_ARGUMENT || n <= out->cap) return st;
        want = n; /* the buffer was too small: n is the needed size */
    }
    return err->status;
}

gm_status cli_chat_format(const gm_chat_message *msgs, size_t n, int add_bos, gm_buf *out,
                          gm_error *err) {
    for (int attempt = 0;; attempt++) {
        size_t room = out->cap - out->len, len = 0;
        gm_status st = gm_chat_format(msgs, n, 1, add_bos, room ? out->data + out->len : NULL, room, &len, err);
        if (st == GM_OK) {
            out->len += len;
            return GM_OK;
        }
        if (attempt || len < room) return st; /* failed for another reason than the size */
        if (!gm_buf_reserve(out, len)) return cli_out_of_memory(err);
    }
}

/* ------------------------------------------------------------------ */
/* JSON output                                                        */
/* ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s[0..n) (n > 0), or 0 when s[0] does not start one. */
static size_t utf8_seq_len(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || len > n || !gm_utf8_valid(s, len, NULL)) return 0;
    return len;
}

void cli_json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_seq_len(s + i, n - i);
        if (len == 0) {
            fputs("\\ufffd", f); /* one replacement per invalid byte */
            i++;
            continue;
        }
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c);
        else fwrite(s + i, 1, len, f);
        i += len;
    }
    fputc('"', f);
}

void cli_json_ids(FILE *f, const int32_t *ids, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, i ? ", %d" : "%d", ids[i]);
    fputc(']', f);
}
