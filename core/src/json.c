/*
 * json.c - strict JSON (RFC 8259) to a flat token array. See json.h.
 *
 * Two passes would need no reallocation, but one pass with a geometric
 * token array is simpler and as fast: the tokenizer.json of Gemma has ~2.6M
 * tokens and parses in about 0.1 s.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#define GM_JSON_MAX_DEPTH 512

typedef struct parser {
    const char *s;
    size_t len, pos;
    gm_json_token *tok;
    uint32_t n_tok, cap_tok;
    const char *what;
    gm_error *err;
    uint32_t stack[GM_JSON_MAX_DEPTH];
    int depth;
} parser;

static gm_status parse_error(parser *p, const char *msg) {
    /* Report a line number: what a person editing config.json needs. */
    size_t line = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++) line += p->s[i] == '\n';
    return gm_fail(p->err, GM_ERR_FORMAT, "%s: invalid JSON at byte %zu (line %zu): %s", p->what,
                   p->pos, line, msg);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int new_token(parser *p, gm_json_type type, size_t start) {
    if (p->n_tok == p->cap_tok) {
        uint32_t cap = p->cap_tok ? p->cap_tok * 2 : 1024;
        if (cap < p->cap_tok) return -1;
        gm_json_token *t = gm_realloc(p->tok, (size_t)cap * sizeof *t);
        if (!t) return -1;
        p->tok = t;
        p->cap_tok = cap;
    }
    gm_json_token *t = &p->tok[p->n_tok];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->start = (uint32_t)start;
    return (int)p->n_tok++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* p->pos is on the opening quote. */
static gm_status scan_string(parser *p) {
    size_t start = ++p->pos;
    bool esc = false;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            int t = new_token(p, GM_JSON_STRING, start);
            if (t < 0) return gm_fail(p->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", p->what);
            p->tok[t].len = (uint32_t)(p->pos - start);
            p->tok[t].has_escape = esc;
            p->tok[t].end = (uint32_t)t + 1;
            p->pos++;
            return GM_OK;
        }
        if (c < 0x20) return parse_error(p, "control character in string");
        if (c == '\\') {
            esc = true;
            if (p->pos + 1 >= p->len) break;
            char e = p->s[p->pos + 1];
            if (e == 'u') {
                if (p->pos + 6 > p->len) break;
                for (int k = 2; k < 6; k++)
                    if (hexval(p->s[p->pos + k]) < 0) return parse_error(p, "bad \\u escape");
                p->pos += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) return parse_error(p, "bad escape");
            p->pos += 2;
            continue;
        }
        p->pos++;
    }
    return parse_error(p, "unterminated string");
}

static gm_status scan_literal(parser *p) {
    static const struct { const char *text; gm_json_type type; } lits[] = {
        {"null", GM_JSON_NULL}, {"true", GM_JSON_TRUE}, {"false", GM_JSON_FALSE}};
    for (size_t k = 0; k < GM_ARRAY_LEN(lits); k++) {
        size_t n = strlen(lits[k].text);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, lits[k].text, n) == 0) {
            int t = new_token(p, lits[k].type, p->pos);
            if (t < 0) return gm_fail(p->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", p->what);
            p->tok[t].len = (uint32_t)n;
            p->tok[t].end = (uint32_t)t + 1;
            p->pos += n;
            return GM_OK;
        }
    }
    return parse_error(p, "unexpected character");
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static gm_status scan_number(parser *p) {
    size_t start = p->pos, i = p->pos;
    if (i < p->len && p->s[i] == '-') i++;
    if (i >= p->len || !is_digit(p->s[i])) return parse_error(p, "bad number");
    if (p->s[i] == '0') i++;
    else while (i < p->len && is_digit(p->s[i])) i++;
    if (i < p->len && p->s[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(p->s[i])) return parse_error(p, "bad number");
        while (i < p->len && is_digit(p->s[i])) i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->len || !is_digit(p->s[i])) return parse_error(p, "bad number");
        while (i < p->len && is_digit(p->s[i])) i++;
    }
    int t = new_token(p, GM_JSON_NUMBER, start);
    if (t < 0) return gm_fail(p->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", p->what);
    p->tok[t].len = (uint32_t)(i - start);
    p->tok[t].end = (uint32_t)t + 1;
    p->pos = i;
    return GM_OK;
}

static gm_status open_container(parser *p, gm_json_type type) {
    if (p->depth >= GM_JSON_MAX_DEPTH) return parse_error(p, "nesting too deep");
    int t = new_token(p, type, p->pos);
    if (t < 0) return gm_fail(p->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", p->what);
    p->stack[p->depth++] = (uint32_t)t;
    p->pos++;
    return GM_OK;
}

/*
 * Iterative parser. State: after a value inside a container we expect ','
 * or the closing bracket; inside an object a value follows "key" ':'.
 */
static gm_status parse_document(parser *p) {
    gm_status st;
    bool need_value = true;  /* a value must come next (start, after ',' or ':') */
    bool allow_close = false;/* an empty container may close right after opening */
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len) {
            if (p->depth == 0 && !need_value) return GM_OK;
            return parse_error(p, "unexpected end of document");
        }
        char c = p->s[p->pos];
        if (!need_value || allow_close) {
            if ((c == ']' || c == '}') && p->depth > 0) {
                gm_json_token *ct = &p->tok[p->stack[p->depth - 1]];
                if ((c == ']') != (ct->type == GM_JSON_ARRAY)) return parse_error(p, "mismatched bracket");
                ct->end = p->n_tok;
                p->depth--;
                p->pos++;
                need_value = false;
                allow_close = false;
                continue;
            }
        }
        if (!need_value) {
            if (p->depth == 0) return parse_error(p, "trailing characters after the document");
            if (c != ',') return parse_error(p, "expected ',' or a closing bracket");
            p->pos++;
            need_value = true;
            allow_close = false;
            continue;
        }
        allow_close = false;
        gm_json_token *parent = p->depth ? &p->tok[p->stack[p->depth - 1]] : NULL;
        if (parent && parent->type == GM_JSON_OBJECT) {
            /* key : value */
            if (c != '"') return parse_error(p, "expected a string key");
            if ((st = scan_string(p)) != GM_OK) return st;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return parse_error(p, "expected ':'");
            p->pos++;
            skip_ws(p);
            if (p->pos >= p->len) return parse_error(p, "unexpected end of document");
            c = p->s[p->pos];
            parent = &p->tok[p->stack[p->depth - 1]];
        }
        if (parent) parent->size++;
        if (c == '{' || c == '[') {
            if ((st = open_container(p, c == '{' ? GM_JSON_OBJECT : GM_JSON_ARRAY)) != GM_OK) return st;
            allow_close = true;
            continue; /* need_value stays true for the first element */
        }
        if (c == '"') st = scan_string(p);
        else if (c == '-' || is_digit(c)) st = scan_number(p);
        else st = scan_literal(p);
        if (st != GM_OK) return st;
        need_value = false;
    }
}

gm_status gm_json_parse(const char *src, size_t len, const char *what, gm_json *out,
                        gm_error *err) {
    memset(out, 0, sizeof *out);
    if (len >= UINT32_MAX) return gm_fail(err, GM_ERR_UNSUPPORTED, "%s: JSON document over 4 GiB", what);
    parser p = {.s = src, .len = len, .what = what, .err = err};
    gm_status st = parse_document(&p);
    if (st != GM_OK) {
        gm_free(p.tok);
        return st;
    }
    out->src = src;
    out->src_len = len;
    out->tok = p.tok;
    out->n_tok = p.n_tok;
    return GM_OK;
}

void gm_json_free(gm_json *doc) {
    if (!doc) return;
    gm_free(doc->tok);
    memset(doc, 0, sizeof *doc);
}

int gm_json_first(const gm_json *d, int c) {
    if (c < 0 || (d->tok[c].type != GM_JSON_ARRAY && d->tok[c].type != GM_JSON_OBJECT)) return -1;
    return d->tok[c].size ? c + 1 : -1;
}

int gm_json_next_elem(const gm_json *d, int c, int e) {
    if (c < 0 || e < 0) return -1;
    int n = (int)d->tok[e].end;
    return n < (int)d->tok[c].end ? n : -1;
}

int gm_json_next_key(const gm_json *d, int c, int k) {
    if (c < 0 || k < 0) return -1;
    int n = (int)d->tok[k + 1].end;
    return n < (int)d->tok[c].end ? n : -1;
}

bool gm_json_string_eq(const gm_json *d, int i, const char *s) {
    if (i < 0) return false;
    const gm_json_token *t = &d->tok[i];
    if (t->type != GM_JSON_STRING) return false;
    size_t n = strlen(s);
    if (!t->has_escape) return t->len == n && memcmp(d->src + t->start, s, n) == 0;
    if (n > t->len) return false;
    char stackbuf[256];
    char *buf = t->len < sizeof stackbuf ? stackbuf : gm_malloc(t->len + 1);
    if (!buf) return false;
    size_t m = gm_json_string_copy(d, i, buf, t->len + 1);
    bool eq = m == n && memcmp(buf, s, n) == 0;
    if (buf != stackbuf) gm_free(buf);
    return eq;
}

int gm_json_get(const gm_json *d, int obj, const char *key) {
    if (obj < 0 || d->tok[obj].type != GM_JSON_OBJECT) return -1;
    for (int k = gm_json_first(d, obj); k >= 0; k = gm_json_next_key(d, obj, k))
        if (gm_json_string_eq(d, k, key)) return k + 1;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static uint32_t hex4(const char *s) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) v = v << 4 | (uint32_t)hexval(s[k]);
    return v;
}

size_t gm_json_string_copy(const gm_json *d, int i, char *buf, size_t cap) {
    if (i < 0 || d->tok[i].type != GM_JSON_STRING || cap == 0) return (size_t)-1;
    const gm_json_token *t = &d->tok[i];
    const char *s = d->src + t->start;
    size_t n = t->len, o = 0;
    if (!t->has_escape) {
        if (n + 1 > cap) return (size_t)-1;
        memcpy(buf, s, n);
        buf[n] = 0;
        return n;
    }
    for (size_t k = 0; k < n;) {
        char tmp[4];
        size_t w;
        if (s[k] != '\\') { tmp[0] = s[k++]; w = 1; }
        else {
            char e = s[k + 1];
            k += 2;
            switch (e) {
            case 'b': tmp[0] = '\b'; w = 1; break;
            case 'f': tmp[0] = '\f'; w = 1; break;
            case 'n': tmp[0] = '\n'; w = 1; break;
            case 'r': tmp[0] = '\r'; w = 1; break;
            case 't': tmp[0] = '\t'; w = 1; break;
            case 'u': {
                uint32_t cp = hex4(s + k);
                k += 4;
                /* A surrogate pair encodes one code point; a lone surrogate becomes U+FFFD. */
                if (cp >= 0xD800 && cp < 0xDC00 && k + 6 <= n && s[k] == '\\' && s[k + 1] == 'u') {
                    uint32_t lo = hex4(s + k + 2);
                    if (lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        k += 6;
                    }
                }
                if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
                w = put_utf8(tmp, cp);
                break;
            }
            default: tmp[0] = e; w = 1; break; /* \" \\ \/ */
            }
        }
        if (o + w + 1 > cap) return (size_t)-1;
        memcpy(buf + o, tmp, w);
        o += w;
    }
    buf[o] = 0;
    return o;
}

char *gm_json_string_dup(const gm_json *d, int i, size_t *len) {
    if (i < 0 || d->tok[i].type != GM_JSON_STRING) return NULL;
    size_t cap = (size_t)d->tok[i].len + 1;
    char *buf = gm_malloc(cap);
    if (!buf) return NULL;
    size_t n = gm_json_string_copy(d, i, buf, cap);
    if (len) *len = n;
    return buf;
}

bool gm_json_number(const gm_json *d, int i, double *out) {
    if (i < 0 || d->tok[i].type != GM_JSON_NUMBER) return false;
    char buf[64];
    const gm_json_token *t = &d->tok[i];
    if (t->len >= sizeof buf) return false;
    memcpy(buf, d->src + t->start, t->len);
    buf[t->len] = 0;
    errno = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + t->len || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool gm_json_int64(const gm_json *d, int i, int64_t *out) {
    double v;
    if (!gm_json_number(d, i, &v)) return false;
    if (v != floor(v) || v < -9.007199254740992e15 || v > 9.007199254740992e15) return false;
    *out = (int64_t)v;
    return true;
}
