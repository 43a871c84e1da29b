/*
 * tokenizer_json.c - reads a Hugging Face tokenizer.json (the `tokenizers`
 * serialization) into a gm_tokenizer_spec and builds the tokenizer.
 *
 * Supported (the Gemma 3 / 3n layout, and SentencePiece-derived BPE files
 * built the same way):
 *   model          BPE (byte_fallback, fuse_unk, ignore_merges, unk_token;
 *                  merges as "a b" strings or ["a", "b"] pairs)
 *   normalizer     null, Replace (String pattern), Prepend, Sequence of these
 *   pre_tokenizer  null, Split (String pattern, any behavior, invert false)
 *   decoder        Sequence/single of Replace (String), ByteFallback, Fuse
 *   post_processor TemplateProcessing: its leading special token is the bos
 *                  that GM_TOKENIZE_ADD_BOS adds; otherwise "<bos>" / "<s>"
 * Anything else fails with GM_ERR_UNSUPPORTED naming the field and type
 * (other post-processors are ignored: they only add special tokens). eos is
 * "<eos>" (or "</s>"); chat models also stop on "<end_of_turn>", which
 * callers look up with gm_tokenizer_token_id. truncation/padding only
 * concern batch encoding and are ignored.
 *
 * Strings without escapes are used in place in the document; escaped ones
 * are unescaped once into a buffer sized up front (so pointers stay valid).
 */
#include "json.h"
#include "tokenizer.h"

typedef struct loader {
    const gm_json *doc;
    const char *what;
    gm_error *err;
    char *unesc;          /* unescaped copies of strings that had escapes */
    size_t unesc_len, unesc_cap;
    gm_tokenizer_spec spec;
    gm_str *tokens;       /* spec.tokens */
    gm_str *merges;       /* spec.merges */
    gm_added_token *added;
} loader;

/* The string value of token i (unescaped), or false when i is not a string. */
static bool get_str(loader *L, int i, gm_str *out) {
    if (i < 0 || gm_json_kind(L->doc, i) != GM_JSON_STRING) return false;
    const gm_json_token *t = &L->doc->tok[i];
    if (!t->has_escape) {
        *out = (gm_str){L->doc->src + t->start, t->len};
        return true;
    }
    size_t n = gm_json_string_copy(L->doc, i, L->unesc + L->unesc_len, L->unesc_cap - L->unesc_len);
    if (n == (size_t)-1) return false; /* only if a string were read twice: each is read once */
    *out = (gm_str){L->unesc + L->unesc_len, n};
    L->unesc_len += n + 1;
    return true;
}

/* Sizes the unescape buffer: the raw length of every escaped string, plus terminators. */
static bool alloc_unescape(loader *L) {
    size_t total = 1;
    for (uint32_t i = 0; i < L->doc->n_tok; i++)
        if (L->doc->tok[i].type == GM_JSON_STRING && L->doc->tok[i].has_escape)
            total += (size_t)L->doc->tok[i].len + 1;
    L->unesc = gm_malloc(total);
    L->unesc_cap = total;
    return L->unesc != NULL;
}

/* Copies a short string for an error message. */
static const char *msg_str(const loader *L, int i, char *buf, size_t cap) {
    if (i < 0) return "(missing)";
    gm_json_type k = gm_json_kind(L->doc, i);
    if (k == GM_JSON_NULL) return "null";
    if (k != GM_JSON_STRING) return "(not a string)";
    const gm_json_token *t = &L->doc->tok[i];
    size_t n = GM_MIN((size_t)t->len, cap - 1);
    memcpy(buf, L->doc->src + t->start, n);
    buf[n] = 0;
    return buf;
}

static gm_status fail_format(loader *L, const char *field, const char *problem) {
    return gm_fail(L->err, GM_ERR_FORMAT, "%s: %s %s", L->what, field, problem);
}

static gm_status fail_type(loader *L, const char *field, int type_tok) {
    char buf[64];
    return gm_fail(L->err, GM_ERR_UNSUPPORTED, "%s: %s type %s is not supported", L->what, field,
                   msg_str(L, type_tok, buf, sizeof buf));
}

/* Optional boolean member (absent or null = dflt). */
static bool get_bool(loader *L, int obj, const char *key, bool dflt) {
    int v = gm_json_get(L->doc, obj, key);
    if (v < 0) return dflt;
    gm_json_type k = gm_json_kind(L->doc, v);
    return k == GM_JSON_TRUE ? true : k == GM_JSON_FALSE ? false : dflt;
}

/* gm_json_string_eq that also accepts a missing token (-1). */
static bool str_is(const gm_json *d, int i, const char *s) { return i >= 0 && gm_json_string_eq(d, i, s); }

static bool is_null(const loader *L, int v) { return v < 0 || gm_json_kind(L->doc, v) == GM_JSON_NULL; }

/* A non-negative integer below GM_TOKENIZER_MAX_ID; digits are parsed directly (hot path). */
static bool get_id(const loader *L, int v, int32_t *out) {
    if (v < 0 || gm_json_kind(L->doc, v) != GM_JSON_NUMBER) return false;
    const gm_json_token *t = &L->doc->tok[v];
    const char *s = L->doc->src + t->start;
    int64_t x = 0;
    for (uint32_t k = 0; k < t->len; k++) {
        if (s[k] < '0' || s[k] > '9') {
            if (!gm_json_int64(L->doc, v, &x)) return false; /* 1e3, 5.0 ... */
            break;
        }
        x = x * 10 + (s[k] - '0');
        if (x >= GM_TOKENIZER_MAX_ID) return false;
    }
    if (x < 0 || x >= GM_TOKENIZER_MAX_ID) return false;
    *out = (int32_t)x;
    return true;
}

/* The string pattern of a Replace / Split ({"String": "..."}); Regex patterns are unsupported. */
static gm_status get_pattern(loader *L, int node, const char *field, gm_str *out) {
    int p = gm_json_get(L->doc, node, "pattern");
    int s = gm_json_get(L->doc, p, "String");
    if (s >= 0 && get_str(L, s, out) && out->len > 0) return GM_OK;
    if (gm_json_get(L->doc, p, "Regex") >= 0)
        return gm_fail(L->err, GM_ERR_UNSUPPORTED, "%s: %s with a Regex pattern is not supported",
                       L->what, field);
    return fail_format(L, field, "has no non-empty String pattern");
}

/* ---- model ---- */

static gm_status read_vocab(loader *L, int vocab) {
    const gm_json *d = L->doc;
    if (vocab < 0 || gm_json_kind(d, vocab) != GM_JSON_OBJECT)
        return fail_format(L, "model.vocab", "is missing or not an object");
    int32_t max_id = -1, id;
    for (int k = gm_json_first(d, vocab); k >= 0; k = gm_json_next_key(d, vocab, k)) {
        if (!get_id(L, k + 1, &id))
            return gm_fail(L->err, GM_ERR_FORMAT, "%s: model.vocab entry %d has an id that is not an integer in [0, %d)",
                           L->what, k, (int)GM_TOKENIZER_MAX_ID);
        max_id = GM_MAX(max_id, id);
    }
    L->tokens = gm_calloc((size_t)max_id + 1, sizeof *L->tokens);
    if (!L->tokens) return gm_fail(L->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", L->what);
    for (int k = gm_json_first(d, vocab); k >= 0; k = gm_json_next_key(d, vocab, k)) {
        get_id(L, k + 1, &id);
        if (L->tokens[id].ptr)
            return gm_fail(L->err, GM_ERR_FORMAT, "%s: model.vocab has id %d twice", L->what, (int)id);
        if (!get_str(L, k, &L->tokens[id])) return fail_format(L, "model.vocab", "has a bad key");
        if (!L->tokens[id].ptr) L->tokens[id].ptr = ""; /* present, empty */
    }
    L->spec.tokens = L->tokens;
    L->spec.n_tokens = max_id + 1;
    return GM_OK;
}

/* One merge: "left right" (exactly one space, as HF convert_merges_to_hashmap) or ["left", "right"]. */
static bool read_merge(loader *L, int m, gm_str *pair) {
    const gm_json *d = L->doc;
    if (gm_json_kind(d, m) == GM_JSON_ARRAY) {
        int a = gm_json_first(d, m);
        int b = a >= 0 ? gm_json_next_elem(d, m, a) : -1;
        return d->tok[m].size == 2 && get_str(L, a, &pair[0]) && get_str(L, b, &pair[1]);
    }
    gm_str s;
    if (!get_str(L, m, &s)) return false;
    const char *sp = memchr(s.ptr, ' ', s.len);
    if (!sp || memchr(sp + 1, ' ', s.len - (size_t)(sp + 1 - s.ptr))) return false;
    pair[0] = (gm_str){s.ptr, (size_t)(sp - s.ptr)};
    pair[1] = (gm_str){sp + 1, s.len - (size_t)(sp + 1 - s.ptr)};
    return true;
}

static gm_status read_merges(loader *L, int merges) {
    const gm_json *d = L->doc;
    if (merges < 0 || gm_json_kind(d, merges) != GM_JSON_ARRAY)
        return fail_format(L, "model.merges", "is missing or not an array");
    size_t n = d->tok[merges].size;
    L->merges = gm_malloc(GM_MAX(n, 1) * 2 * sizeof *L->merges);
    if (!L->merges) return gm_fail(L->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", L->what);
    size_t r = 0;
    for (int m = gm_json_first(d, merges); m >= 0; m = gm_json_next_elem(d, merges, m), r++)
        if (!read_merge(L, m, &L->merges[2 * r]))
            return gm_fail(L->err, GM_ERR_FORMAT,
                           "%s: model.merges[%zu] is not \"left right\" or [\"left\", \"right\"]", L->what, r);
    L->spec.merges = L->merges;
    L->spec.n_merges = n;
    return GM_OK;
}

/* Options that change BPE results and that we do not implement must be off. */
static gm_status check_bpe_options(loader *L, int model) {
    int v = gm_json_get(L->doc, model, "dropout");
    double dropout = 0;
    if (!is_null(L, v) && (!gm_json_number(L->doc, v, &dropout) || dropout != 0))
        return gm_fail(L->err, GM_ERR_UNSUPPORTED,
                       "%s: BPE dropout %g is not supported (it makes encoding random)", L->what, dropout);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t k = 0; k < GM_ARRAY_LEN(affixes); k++) {
        gm_str s = {0};
        v = gm_json_get(L->doc, model, affixes[k]);
        if (!is_null(L, v) && (!get_str(L, v, &s) || s.len))
            return gm_fail(L->err, GM_ERR_UNSUPPORTED, "%s: BPE %s is not supported", L->what, affixes[k]);
    }
    return GM_OK;
}

static gm_status read_model(loader *L, int root) {
    const gm_json *d = L->doc;
    int model = gm_json_get(d, root, "model");
    if (model < 0 || gm_json_kind(d, model) != GM_JSON_OBJECT)
        return fail_format(L, "model", "is missing or not an object");
    int type = gm_json_get(d, model, "type");
    if (type < 0) return fail_format(L, "model", "has no type");
    if (!str_is(d, type, "BPE")) return fail_type(L, "model", type);
    gm_status st = check_bpe_options(L, model);
    if (st == GM_OK) st = read_vocab(L, gm_json_get(d, model, "vocab"));
    if (st == GM_OK) st = read_merges(L, gm_json_get(d, model, "merges"));
    if (st != GM_OK) return st;
    L->spec.byte_fallback = get_bool(L, model, "byte_fallback", false);
    L->spec.fuse_unk = get_bool(L, model, "fuse_unk", false);
    L->spec.ignore_merges = get_bool(L, model, "ignore_merges", false);
    return GM_OK;
}

/* ---- added tokens ---- */

static gm_status read_added(loader *L, int root) {
    const gm_json *d = L->doc;
    int arr = gm_json_get(d, root, "added_tokens");
    if (is_null(L, arr)) return GM_OK;
    if (gm_json_kind(d, arr) != GM_JSON_ARRAY) return fail_format(L, "added_tokens", "is not an array");
    size_t n = d->tok[arr].size, i = 0;
    L->added = gm_calloc(GM_MAX(n, 1), sizeof *L->added);
    if (!L->added) return gm_fail(L->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", L->what);
    for (int a = gm_json_first(d, arr); a >= 0; a = gm_json_next_elem(d, arr, a), i++) {
        gm_added_token *t = &L->added[i];
        if (!get_id(L, gm_json_get(d, a, "id"), &t->id) || !get_str(L, gm_json_get(d, a, "content"), &t->content))
            return gm_fail(L->err, GM_ERR_FORMAT, "%s: added_tokens[%zu] needs an integer id and a string content",
                           L->what, i);
        bool special = get_bool(L, a, "special", false);
        t->flags = (special ? GM_ADDED_SPECIAL : 0) |
                   (get_bool(L, a, "lstrip", false) ? GM_ADDED_LSTRIP : 0) |
                   (get_bool(L, a, "rstrip", false) ? GM_ADDED_RSTRIP : 0) |
                   (get_bool(L, a, "single_word", false) ? GM_ADDED_SINGLE_WORD : 0) |
                   (get_bool(L, a, "normalized", !special) ? GM_ADDED_NORMALIZED : 0);
    }
    L->spec.added = L->added;
    L->spec.n_added = n;
    return GM_OK;
}

/* ---- normalizer / pre-tokenizer / decoder ---- */

static gm_status add_norm_step(loader *L, gm_norm_step step) {
    if (L->spec.n_norm == GM_TOKENIZER_MAX_NORM_STEPS)
        return gm_fail(L->err, GM_ERR_UNSUPPORTED, "%s: more than %d normalizer steps", L->what,
                       GM_TOKENIZER_MAX_NORM_STEPS);
    L->spec.norm[L->spec.n_norm++] = step;
    return GM_OK;
}

static gm_status read_normalizer(loader *L, int node, int depth) {
    const gm_json *d = L->doc;
    if (is_null(L, node)) return GM_OK;
    int type = gm_json_get(d, node, "type");
    if (str_is(d, type, "Sequence") && depth < 4) {
        int list = gm_json_get(d, node, "normalizers");
        gm_status st = GM_OK;
        for (int k = gm_json_first(d, list); k >= 0 && st == GM_OK; k = gm_json_next_elem(d, list, k))
            st = read_normalizer(L, k, depth + 1);
        return st;
    }
    gm_norm_step step = {0};
    if (str_is(d, type, "Replace")) {
        step.kind = GM_NORM_REPLACE;
        gm_status st = get_pattern(L, node, "normalizer Replace", &step.pattern);
        if (st != GM_OK) return st;
        if (!get_str(L, gm_json_get(d, node, "content"), &step.content))
            return fail_format(L, "normalizer Replace", "has no string content");
        return add_norm_step(L, step);
    }
    if (str_is(d, type, "Prepend")) {
        step.kind = GM_NORM_PREPEND;
        if (!get_str(L, gm_json_get(d, node, "prepend"), &step.content))
            return fail_format(L, "normalizer Prepend", "has no string prepend");
        return add_norm_step(L, step);
    }
    return fail_type(L, "normalizer", type);
}

static gm_status read_pre_tokenizer(loader *L, int node) {
    const gm_json *d = L->doc;
    if (is_null(L, node)) return GM_OK;
    int type = gm_json_get(d, node, "type");
    if (!str_is(d, type, "Split")) return fail_type(L, "pre_tokenizer", type);
    if (get_bool(L, node, "invert", false))
        return gm_fail(L->err, GM_ERR_UNSUPPORTED, "%s: pre_tokenizer Split with invert is not supported", L->what);
    static const struct { const char *name; gm_split_behavior b; } behaviors[] = {
        {"Removed", GM_SPLIT_REMOVED}, {"Isolated", GM_SPLIT_ISOLATED},
        {"MergedWithPrevious", GM_SPLIT_MERGED_WITH_PREVIOUS},
        {"MergedWithNext", GM_SPLIT_MERGED_WITH_NEXT}, {"Contiguous", GM_SPLIT_CONTIGUOUS}};
    int beh = gm_json_get(d, node, "behavior");
    for (size_t k = 0; k < GM_ARRAY_LEN(behaviors); k++)
        if (str_is(d, beh, behaviors[k].name)) {
            L->spec.split = behaviors[k].b;
            return get_pattern(L, node, "pre_tokenizer Split", &L->spec.split_pattern);
        }
    char buf[64];
    return gm_fail(L->err, GM_ERR_UNSUPPORTED, "%s: pre_tokenizer Split behavior %s is not supported",
                   L->what, msg_str(L, beh, buf, sizeof buf));
}

/* One decoder step. Replace must come before ByteFallback (it then never touches "<0xNN>"). */
static gm_status read_decoder_step(loader *L, int node) {
    const gm_json *d = L->doc;
    int type = gm_json_get(d, node, "type");
    if (str_is(d, type, "ByteFallback")) {
        L->spec.dec_byte_fallback = true;
        return GM_OK;
    }
    if (str_is(d, type, "Fuse")) return GM_OK; /* we always concatenate */
    if (str_is(d, type, "Replace") && !L->spec.dec_replace_pattern.ptr &&
        !L->spec.dec_byte_fallback) {
        gm_status st = get_pattern(L, node, "decoder Replace", &L->spec.dec_replace_pattern);
        if (st != GM_OK) return st;
        if (!get_str(L, gm_json_get(d, node, "content"), &L->spec.dec_replace_content))
            return fail_format(L, "decoder Replace", "has no string content");
        return GM_OK;
    }
    if (str_is(d, type, "Replace"))
        return gm_fail(L->err, GM_ERR_UNSUPPORTED,
                       "%s: decoder Replace after ByteFallback or twice is not supported", L->what);
    return fail_type(L, "decoder", type);
}

static gm_status read_decoder(loader *L, int node) {
    const gm_json *d = L->doc;
    if (is_null(L, node))
        return gm_fail(L->err, GM_ERR_UNSUPPORTED, "%s: a tokenizer without a decoder is not supported", L->what);
    int type = gm_json_get(d, node, "type");
    if (!str_is(d, type, "Sequence")) return read_decoder_step(L, node);
    int list = gm_json_get(d, node, "decoders");
    gm_status st = GM_OK;
    for (int k = gm_json_first(d, list); k >= 0 && st == GM_OK; k = gm_json_next_elem(d, list, k))
        st = read_decoder_step(L, k);
    return st;
}

/* ---- bos / eos / unk ---- */

/*
 * The id TemplateProcessing puts before the sequence ("single": [<bos>, $A]):
 * special_tokens[name].ids[0], else the token named so; -1 when the
 * template does not start with a special token (or there is none).
 */
static int32_t template_bos(loader *L, int root, const gm_tokenizer *tok) {
    const gm_json *d = L->doc;
    int pp = gm_json_get(d, root, "post_processor");
    if (!str_is(d, gm_json_get(d, pp, "type"), "TemplateProcessing")) return -1;
    int first = gm_json_first(d, gm_json_get(d, pp, "single"));
    int ref = gm_json_get(d, gm_json_get(d, first, "SpecialToken"), "id");
    char name[256];
    if (ref < 0 || gm_json_string_copy(d, ref, name, sizeof name) == (size_t)-1) return -1;
    int entry = gm_json_get(d, gm_json_get(d, pp, "special_tokens"), name);
    int32_t id;
    if (get_id(L, gm_json_first(d, gm_json_get(d, entry, "ids")), &id) && id < tok->n_vocab) return id;
    return gm_tokenizer_token_id(tok, name);
}

static gm_status resolve_ids(loader *L, int root, gm_tokenizer *tok) {
    const gm_json *d = L->doc;
    int unk = gm_json_get(d, gm_json_get(d, root, "model"), "unk_token");
    gm_str unk_name = {0};
    if (!is_null(L, unk)) {
        if (!get_str(L, unk, &unk_name)) return fail_format(L, "model.unk_token", "is not a string");
        tok->unk_id = gm_tok_model_find(tok, unk_name.ptr, unk_name.len);
        if (tok->unk_id < 0)
            return gm_fail(L->err, GM_ERR_FORMAT, "%s: model.unk_token \"%.*s\" is not in the vocabulary",
                           L->what, (int)GM_MIN(unk_name.len, 64), unk_name.ptr);
    }
    tok->bos_id = template_bos(L, root, tok);
    if (tok->bos_id < 0) tok->bos_id = gm_tokenizer_token_id(tok, "<bos>");
    if (tok->bos_id < 0) tok->bos_id = gm_tokenizer_token_id(tok, "<s>");
    tok->eos_id = gm_tokenizer_token_id(tok, "<eos>");
    if (tok->eos_id < 0) tok->eos_id = gm_tokenizer_token_id(tok, "</s>");
    return GM_OK;
}

/* ---- entry points ---- */

static gm_status read_spec(loader *L, int root) {
    const gm_json *d = L->doc;
    if (gm_json_kind(d, root) != GM_JSON_OBJECT) return fail_format(L, "the document", "is not an object");
    gm_status st = read_model(L, root);
    if (st == GM_OK) st = read_added(L, root);
    if (st == GM_OK) st = read_normalizer(L, gm_json_get(d, root, "normalizer"), 0);
    if (st == GM_OK) st = read_pre_tokenizer(L, gm_json_get(d, root, "pre_tokenizer"));
    if (st == GM_OK) st = read_decoder(L, gm_json_get(d, root, "decoder"));
    return st;
}

gm_status gm_tokenizer_open_json(const char *json, size_t len, const char *what,
                                 gm_tokenizer **out, gm_error *err) {
    if (!out) return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenizer_open_json: out is NULL");
    *out = NULL;
    if (!what) what = "tokenizer.json";
    gm_json doc;
    gm_status st = gm_json_parse(json, len, what, &doc, err);
    if (st != GM_OK) return st;
    loader L = {.doc = &doc, .what = what, .err = err};
    L.spec.unk_id = L.spec.bos_id = L.spec.eos_id = -1;
    if (!alloc_unescape(&L)) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    if (st == GM_OK) st = read_spec(&L, 0);
    gm_tokenizer *tok = NULL;
    if (st == GM_OK) st = gm_tokenizer_build(&L.spec, what, &tok, err);
    if (st == GM_OK) st = resolve_ids(&L, 0, tok);
    gm_free(L.tokens);
    gm_free(L.merges);
    gm_free(L.added);
    gm_free(L.unesc);
    gm_json_free(&doc);
    if (st != GM_OK) {
        gm_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return GM_OK;
}

gm_status gm_tokenizer_open(const char *path, gm_tokenizer **out, gm_error *err) {
    if (!out) return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenizer_open: out is NULL");
    *out = NULL;
    if (!path) return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenizer_open: path is NULL");
    gm_mapped_file f;
    gm_status st = gm_map_file(path, &f, err);
    if (st != GM_OK) return st;
    st = gm_tokenizer_open_json((const char *)f.data, f.size, path, out, err);
    gm_unmap_file(&f);
    return st;
}
