/*
 * tokenizer_build.c - turns a gm_tokenizer_spec into the immutable tables
 * of a gm_tokenizer (see tokenizer.h), frees it, and answers the small
 * public getters.
 *
 * Memory: one arena holds every string (token texts, decoded bytes, the
 * normalizer's literals); the hash tables are flat arrays. Nothing is
 * allocated per token, so loading the 262k-token Gemma vocabulary with its
 * 515k merges is a few large allocations.
 */
#include "tokenizer.h"

#include <stdlib.h>

/* ---- small helpers ---- */

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n && c < (1u << 31)) c <<= 1;
    return c;
}

/* Appends n bytes to the arena; the offset goes to *off. False on OOM or past 4 GiB. */
static bool arena_put(gm_buf *arena, const char *s, size_t n, uint32_t *off) {
    if (arena->len + n >= UINT32_MAX || !gm_buf_reserve(arena, n)) return false;
    *off = (uint32_t)arena->len;
    if (n) memcpy(arena->data + arena->len, s, n);
    arena->len += n;
    return true;
}

static const char *entry_model(const gm_tokenizer *tok, const gm_tok_entry *e) {
    return tok->arena + e->model_off;
}

/* ---- string -> id maps ---- */

static bool strmap_alloc(gm_tok_strmap *m, size_t n_keys) {
    uint32_t cap = pow2_at_least(n_keys * 2 + 1);
    m->slots = gm_calloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    return m->slots != NULL;
}

static void strmap_free(gm_tok_strmap *m) {
    gm_free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Short keys dominate: a plain loop beats a call to memcmp. */
static inline bool bytes_equal(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* The slot of key s[0..n) with hash h: the key's slot, or the empty slot where it would go. */
static uint32_t strmap_slot(const char *arena, const gm_tok_strmap *m, const char *s, size_t n,
                            uint64_t h) {
    uint32_t h32 = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        const gm_tok_slot *sl = &m->slots[i];
        if (sl->id1 == 0) return i;
        if (sl->hash == h32 && sl->len == n && bytes_equal(arena + sl->off, s, n)) return i;
    }
}

/* Maps the arena string (off, len) to id; an existing key keeps its id unless `replace`. */
static void strmap_insert(const char *arena, gm_tok_strmap *m, uint32_t off, uint32_t len,
                          int32_t id, bool replace) {
    uint64_t h = gm_tok_hash(arena + off, len);
    uint32_t i = strmap_slot(arena, m, arena + off, len, h);
    if (m->slots[i].id1 != 0 && !replace) return;
    m->slots[i] = (gm_tok_slot){(uint32_t)(h >> 32), (uint32_t)id + 1, off, len};
}

static int32_t strmap_find(const char *arena, const gm_tok_strmap *m, const char *s, size_t n) {
    return (int32_t)m->slots[strmap_slot(arena, m, s, n, gm_tok_hash(s, n))].id1 - 1;
}

int32_t gm_tok_model_find(const gm_tokenizer *tok, const char *s, size_t n) {
    return strmap_find(tok->arena, &tok->model_map, s, n);
}

/* ---- normalizer (also used to normalize added-token patterns) ---- */

/* HF normalizers/replace.rs with a String pattern: every non-overlapping match, left to right. */
static bool replace_all(const gm_str *pat, const gm_str *with, const char *s, size_t n, gm_buf *out) {
    size_t i = 0, start = 0;
    if (!gm_buf_reserve(out, n)) return false;
    while (i + pat->len <= n) {
        if (s[i] == pat->ptr[0] && memcmp(s + i, pat->ptr, pat->len) == 0) {
            if (!gm_buf_append(out, s + start, i - start) ||
                !gm_buf_append(out, with->ptr, with->len))
                return false;
            i += pat->len;
            start = i;
        } else {
            i++;
        }
    }
    return gm_buf_append(out, s + start, n - start);
}

static bool normalize_step(const gm_norm_step *st, const char *s, size_t n, gm_buf *out) {
    if (st->kind == GM_NORM_PREPEND) {
        /* HF normalizers/prepend.rs: only a non-empty string gets the prefix. */
        if (n && !gm_buf_append(out, st->content.ptr, st->content.len)) return false;
        return gm_buf_append(out, s, n);
    }
    return replace_all(&st->pattern, &st->content, s, n, out);
}

bool gm_tok_normalize(const gm_norm_step *steps, int n_steps, const char *s, size_t n,
                      gm_buf *out) {
    if (n_steps == 0) return gm_buf_append(out, s, n);
    if (n_steps == 1) return normalize_step(&steps[0], s, n, out);
    gm_buf a = {0}, b = {0};
    bool ok = normalize_step(&steps[0], s, n, &a);
    for (int k = 1; ok && k < n_steps - 1; k++) {
        b.len = 0;
        ok = normalize_step(&steps[k], a.data ? a.data : "", a.len, &b);
        gm_buf t = a;
        a = b;
        b = t;
    }
    ok = ok && normalize_step(&steps[n_steps - 1], a.data ? a.data : "", a.len, out);
    gm_buf_free(&a);
    gm_buf_free(&b);
    return ok;
}

/* ---- vocabulary entries ---- */

static gm_status check_spec(const gm_tokenizer_spec *spec, const char *what, int32_t *n_vocab,
                            gm_error *err) {
    if (spec->n_tokens < 0 || spec->n_tokens > GM_TOKENIZER_MAX_ID || (spec->n_tokens && !spec->tokens))
        return gm_fail(err, GM_ERR_FORMAT, "%s: bad vocabulary size %d", what, (int)spec->n_tokens);
    int32_t n = spec->n_tokens;
    if ((spec->n_added && !spec->added) || (spec->n_merges && !spec->merges))
        return gm_fail(err, GM_ERR_ARGUMENT, "%s: spec lists added tokens or merges without arrays", what);
    for (size_t i = 0; i < spec->n_added; i++) {
        int32_t id = spec->added[i].id;
        if (!spec->added[i].content.ptr && spec->added[i].content.len)
            return gm_fail(err, GM_ERR_ARGUMENT, "%s: added token %zu has no content", what, i);
        if (id < 0 || id >= GM_TOKENIZER_MAX_ID)
            return gm_fail(err, GM_ERR_FORMAT, "%s: added token %zu has id %d, out of range", what,
                           i, (int)id);
        if (spec->added[i].content.len) n = GM_MAX(n, id + 1);
    }
    if (spec->n_norm < 0 || spec->n_norm > GM_TOKENIZER_MAX_NORM_STEPS)
        return gm_fail(err, GM_ERR_UNSUPPORTED, "%s: %d normalizer steps (at most %d supported)",
                       what, spec->n_norm, GM_TOKENIZER_MAX_NORM_STEPS);
    for (int k = 0; k < spec->n_norm; k++)
        if (spec->norm[k].kind == GM_NORM_REPLACE && spec->norm[k].pattern.len == 0)
            return gm_fail(err, GM_ERR_FORMAT, "%s: normalizer Replace with an empty pattern", what);
    if (spec->split != GM_SPLIT_NONE && spec->split_pattern.len == 0)
        return gm_fail(err, GM_ERR_FORMAT, "%s: Split pre-tokenizer with an empty pattern", what);
    if (spec->dec_replace_pattern.ptr && spec->dec_replace_pattern.len == 0)
        return gm_fail(err, GM_ERR_FORMAT, "%s: decoder Replace with an empty pattern", what);
    const int32_t ids[3] = {spec->unk_id, spec->bos_id, spec->eos_id};
    static const char *const names[3] = {"unk", "bos", "eos"};
    for (int k = 0; k < 3; k++)
        if (ids[k] < -1 || ids[k] >= n)
            return gm_fail(err, GM_ERR_FORMAT, "%s: %s id %d is not in the vocabulary", what,
                           names[k], (int)ids[k]);
    *n_vocab = n;
    return GM_OK;
}

static bool add_model_tokens(gm_tokenizer *tok, const gm_tokenizer_spec *spec, gm_buf *arena) {
    for (int32_t id = 0; id < spec->n_tokens; id++) {
        const gm_str *s = &spec->tokens[id];
        if (!s->ptr) continue;
        gm_tok_entry *e = &tok->entry[id];
        if (!arena_put(arena, s->ptr, s->len, &e->model_off)) return false;
        e->model_len = (uint32_t)s->len;
        e->text_off = e->model_off;
        e->text_len = e->model_len;
        e->flags = GM_TOKF_EXISTS | GM_TOKF_MODEL;
    }
    return true;
}

/* HF AddedVocabulary: the added content names the id (it wins over the model's string). */
static bool add_added_tokens(gm_tokenizer *tok, const gm_tokenizer_spec *spec, gm_buf *arena) {
    for (size_t i = 0; i < spec->n_added; i++) {
        const gm_added_token *a = &spec->added[i];
        if (a->content.len == 0) continue; /* HF AddedVocabulary::add_tokens ignores empty tokens */
        gm_tok_entry *e = &tok->entry[a->id];
        bool same = (e->flags & GM_TOKF_MODEL) && e->model_len == a->content.len &&
                    memcmp(arena->data + e->model_off, a->content.ptr, a->content.len) == 0;
        if (!same) {
            if (!arena_put(arena, a->content.ptr, a->content.len, &e->text_off)) return false;
            e->text_len = (uint32_t)a->content.len;
        }
        e->flags &= GM_TOKF_MODEL; /* a repeated id takes the later options */
        e->flags |= GM_TOKF_EXISTS | GM_TOKF_ADDED;
        if (a->flags & GM_ADDED_SPECIAL) e->flags |= GM_TOKF_SPECIAL;
        if (a->flags & GM_ADDED_LSTRIP) e->flags |= GM_TOKF_LSTRIP;
        if (a->flags & GM_ADDED_RSTRIP) e->flags |= GM_TOKF_RSTRIP;
        if (a->flags & GM_ADDED_SINGLE_WORD) e->flags |= GM_TOKF_SINGLE_WORD;
    }
    return true;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xNN>" -> NN (either case, as Rust's u8::from_str_radix(.., 16)); -1 otherwise. */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static bool contains(const char *s, size_t n, const gm_str *pat) {
    for (size_t i = 0; i + pat->len <= n; i++)
        if (memcmp(s + i, pat->ptr, pat->len) == 0) return true;
    return false;
}

/*
 * The decoder chain per token (HF decoders: Replace, then ByteFallback):
 * the text with the Replace applied, or byte NN when that reads "<0xNN>".
 * Tokens the decoder leaves alone share their text's bytes.
 */
static bool add_decoded(gm_tokenizer *tok, const gm_tokenizer_spec *spec, gm_buf *arena,
                        gm_buf *tmp) {
    const gm_str *pat = &spec->dec_replace_pattern, *with = &spec->dec_replace_content;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        gm_tok_entry *e = &tok->entry[id];
        if (!(e->flags & GM_TOKF_EXISTS)) continue;
        e->dec_off = e->text_off;
        e->dec_len = e->text_len;
        bool replaced = pat->ptr && contains(arena->data + e->text_off, e->text_len, pat);
        tmp->len = 0;
        if (replaced && !replace_all(pat, with, arena->data + e->text_off, e->text_len, tmp)) return false;
        const char *s = replaced ? tmp->data : arena->data + e->text_off;
        size_t n = replaced ? tmp->len : e->text_len;
        int byte = spec->dec_byte_fallback ? byte_token_value(s, n) : -1;
        if (byte >= 0) {
            char b = (char)byte;
            if (!arena_put(arena, &b, 1, &e->dec_off)) return false;
            e->dec_len = 1;
            e->flags |= GM_TOKF_BYTE;
        } else if (replaced) {
            if (!arena_put(arena, tmp->data, tmp->len, &e->dec_off)) return false;
            e->dec_len = (uint32_t)tmp->len;
        }
    }
    return true;
}

/* Copies the normalizer / pre-tokenizer literals into the arena (offsets in ptr for now). */
static bool add_config_strings(gm_tokenizer *tok, const gm_tokenizer_spec *spec, gm_buf *arena,
                               uint32_t offs[][2], uint32_t *split_off) {
    tok->n_norm = spec->n_norm;
    for (int k = 0; k < spec->n_norm; k++) {
        tok->norm[k] = spec->norm[k];
        if (!arena_put(arena, spec->norm[k].pattern.ptr, spec->norm[k].pattern.len, &offs[k][0]) ||
            !arena_put(arena, spec->norm[k].content.ptr, spec->norm[k].content.len, &offs[k][1]))
            return false;
    }
    tok->split = spec->split;
    tok->split_pattern.len = spec->split_pattern.len;
    return arena_put(arena, spec->split_pattern.ptr, spec->split_pattern.len, split_off);
}

static void fix_config_pointers(gm_tokenizer *tok, uint32_t offs[][2], uint32_t split_off) {
    for (int k = 0; k < tok->n_norm; k++) {
        tok->norm[k].pattern.ptr = tok->arena + offs[k][0];
        tok->norm[k].content.ptr = tok->arena + offs[k][1];
    }
    tok->split_pattern.ptr = tok->arena + split_off;
}

static bool build_maps(gm_tokenizer *tok, const gm_tokenizer_spec *spec) {
    if (!strmap_alloc(&tok->model_map, (size_t)spec->n_tokens) ||
        !strmap_alloc(&tok->added_map, spec->n_added))
        return false;
    for (int32_t id = 0; id < spec->n_tokens; id++) {
        const gm_tok_entry *e = &tok->entry[id];
        if (e->flags & GM_TOKF_MODEL)
            strmap_insert(tok->arena, &tok->model_map, e->model_off, e->model_len, id, false);
    }
    /* Later added tokens win, as HF's added_tokens_map. */
    for (size_t i = 0; i < spec->n_added; i++) {
        if (spec->added[i].content.len == 0) continue;
        const gm_tok_entry *e = &tok->entry[spec->added[i].id];
        strmap_insert(tok->arena, &tok->added_map, e->text_off, e->text_len, spec->added[i].id, true);
    }
    for (int b = 0; b < 256; b++) {
        char name[7];
        static const char hex[] = "0123456789ABCDEF";
        memcpy(name, "<0x", 3);
        name[3] = hex[b >> 4];
        name[4] = hex[b & 15];
        name[5] = '>';
        tok->byte_id[b] = gm_tok_model_find(tok, name, 6);
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        tok->ascii_id[c] = gm_tok_model_find(tok, &ch, 1);
    }
    return true;
}

/* ---- merges ---- */

static void merge_insert(gm_tokenizer *tok, int32_t left, int32_t right, uint32_t rank, int32_t merged) {
    uint32_t a = (uint32_t)left, b = (uint32_t)right;
    for (uint32_t i = (uint32_t)gm_tok_pair_hash(a, b) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
        gm_tok_merge_slot *s = &tok->merges[i];
        if (s->left == UINT32_MAX) {
            *s = (gm_tok_merge_slot){a, b, rank, merged};
            tok->n_merges++;
            return;
        }
        if (s->left == a && s->right == b) { /* a repeated pair: the later rank wins, as HF's HashMap */
            s->rank = rank;
            s->merged = merged;
            return;
        }
    }
}

static bool merges_alloc(gm_tokenizer *tok, size_t n) {
    uint32_t cap = pow2_at_least(n * 2 + 1);
    tok->merges = gm_malloc((size_t)cap * sizeof *tok->merges);
    if (!tok->merges) return false;
    memset(tok->merges, 0xFF, (size_t)cap * sizeof *tok->merges);
    tok->merge_mask = cap - 1;
    return true;
}

/*
 * Merges are resolved in blocks: first every string of the block is hashed
 * and its slot prefetched, then looked up, then the merge-table slots are
 * prefetched and filled. The tables are far larger than the caches, so
 * overlapping the misses is most of the load time.
 */
#define MERGE_BLOCK 32

typedef struct merge_job {
    uint64_t hash[3];   /* left, right, left+right */
    uint32_t cat_off;   /* left+right in the block's buffer */
    int32_t id[3];
} merge_job;

static void prefetch_slot(const gm_tok_strmap *m, uint64_t h) {
    GM_TOK_PREFETCH(&m->slots[(uint32_t)h & m->mask]);
}

static gm_status merge_oov(const gm_tokenizer_spec *spec, size_t r, const merge_job *j,
                           const char *cat, const char *what, gm_error *err) {
    const gm_str *l = &spec->merges[2 * r], *rt = &spec->merges[2 * r + 1];
    gm_str whole = {cat + j->cat_off, l->len + rt->len};
    const gm_str *miss = j->id[0] < 0 ? l : j->id[1] < 0 ? rt : &whole;
    return gm_fail(err, GM_ERR_FORMAT, "%s: merge %zu (\"%.*s\" \"%.*s\"): \"%.*s\" is not in the vocabulary",
                   what, r, (int)GM_MIN(l->len, 64), l->ptr, (int)GM_MIN(rt->len, 64), rt->ptr,
                   (int)GM_MIN(miss->len, 64), miss->ptr);
}

/* Resolves merges [r0, r0 + n) of the spec and inserts them (rank = index). */
static gm_status add_merge_block(gm_tokenizer *tok, const gm_tokenizer_spec *spec, size_t r0, size_t n,
                                 gm_buf *cat, const char *what, gm_error *err) {
    merge_job job[MERGE_BLOCK];
    const gm_tok_strmap *map = &tok->model_map;
    cat->len = 0;
    for (size_t k = 0; k < n; k++) {
        const gm_str *l = &spec->merges[2 * (r0 + k)], *rt = l + 1;
        job[k].cat_off = (uint32_t)cat->len;
        if (cat->len + l->len + rt->len >= UINT32_MAX || !gm_buf_append(cat, l->ptr, l->len) ||
            !gm_buf_append(cat, rt->ptr, rt->len))
            return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
        job[k].hash[0] = gm_tok_hash(l->ptr, l->len);
        job[k].hash[1] = gm_tok_hash(rt->ptr, rt->len);
        for (int s = 0; s < 2; s++) prefetch_slot(map, job[k].hash[s]);
    }
    for (size_t k = 0; k < n; k++) {
        const gm_str *l = &spec->merges[2 * (r0 + k)];
        job[k].hash[2] = gm_tok_hash(cat->data + job[k].cat_off, l[0].len + l[1].len);
        prefetch_slot(map, job[k].hash[2]);
    }
    for (size_t k = 0; k < n; k++) {
        const gm_str *l = &spec->merges[2 * (r0 + k)];
        const gm_str key[3] = {l[0], l[1], {cat->data + job[k].cat_off, l[0].len + l[1].len}};
        for (int s = 0; s < 3; s++)
            job[k].id[s] = (int32_t)map->slots[strmap_slot(tok->arena, map, key[s].ptr, key[s].len,
                                                            job[k].hash[s])].id1 - 1;
        if (job[k].id[0] < 0 || job[k].id[1] < 0 || job[k].id[2] < 0)
            return merge_oov(spec, r0 + k, &job[k], cat->data, what, err);
        GM_TOK_PREFETCH(&tok->merges[gm_tok_pair_hash((uint32_t)job[k].id[0], (uint32_t)job[k].id[1]) &
                                     tok->merge_mask]);
    }
    for (size_t k = 0; k < n; k++) merge_insert(tok, job[k].id[0], job[k].id[1], (uint32_t)(r0 + k), job[k].id[2]);
    return GM_OK;
}

/* Resolves the merge list of the spec (strings) to ids; the concatenation must be a token. */
static gm_status add_merges(gm_tokenizer *tok, const gm_tokenizer_spec *spec, const char *what,
                            gm_error *err) {
    if (spec->n_merges > UINT32_MAX / 4)
        return gm_fail(err, GM_ERR_FORMAT, "%s: %zu merges is too many", what, spec->n_merges);
    if (!merges_alloc(tok, spec->n_merges))
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu merges", what, spec->n_merges);
    gm_buf cat = {0};
    gm_status st = GM_OK;
    for (size_t r = 0; r < spec->n_merges && st == GM_OK; r += MERGE_BLOCK)
        st = add_merge_block(tok, spec, r, GM_MIN(MERGE_BLOCK, spec->n_merges - r), &cat, what, err);
    gm_buf_free(&cat);
    return st;
}

/* A merge derived from scores, with transformers' generate_merges sort key. */
typedef struct scored_merge {
    float score;
    uint32_t len_l, len_r;  /* in code points */
    int32_t left, right, merged;
    uint32_t seq;           /* order of generation: keeps the sort stable */
} scored_merge;

static int cmp_scored(const void *pa, const void *pb) {
    const scored_merge *a = pa, *b = pb;
    /* sorted(key=(score, len(l), len(r)), reverse=True): larger first, stable. */
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->len_l != b->len_l) return a->len_l > b->len_l ? -1 : 1;
    if (a->len_r != b->len_r) return a->len_r > b->len_r ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int cmp_local(const void *pa, const void *pb) {
    const scored_merge *a = pa, *b = pb;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return a->right < b->right ? -1 : a->right > b->right;
}

static size_t utf8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Every split of token `id` into two vocabulary tokens, sorted by (left id, right id). */
static bool splits_of(const gm_tokenizer *tok, const gm_tokenizer_spec *spec, int32_t id,
                      scored_merge **list, size_t *n, size_t *cap) {
    const gm_tok_entry *e = &tok->entry[id];
    const char *s = entry_model(tok, e);
    size_t first = *n;
    for (size_t k = gm_utf8_char_len((unsigned char)s[0]); k < e->model_len;
         k += gm_utf8_char_len((unsigned char)s[k])) {
        int32_t a = gm_tok_model_find(tok, s, k);
        int32_t b = a < 0 ? -1 : gm_tok_model_find(tok, s + k, e->model_len - k);
        if (b < 0) continue;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 4096;
            scored_merge *l = gm_realloc(*list, c * sizeof *l);
            if (!l) return false;
            *list = l;
            *cap = c;
        }
        float score = spec->scores[id] == spec->scores[id] ? spec->scores[id] : -3.0e38f; /* NaN sorts last */
        (*list)[(*n)++] = (scored_merge){score, (uint32_t)utf8_count(s, k),
                                          (uint32_t)utf8_count(s + k, e->model_len - k), a, b, id, 0};
    }
    if (*n - first > 1) qsort(*list + first, *n - first, sizeof **list, cmp_local);
    return true;
}

/*
 * SentencePiece BPE models (GGUF "llama") have scores instead of merges.
 * transformers' generate_merges (convert_slow_tokenizer.py) derives the
 * merge list HF uses: every split of every token into two tokens, ranked by
 * the token's score. We rank the same way so both sources agree.
 */
static gm_status synthesize_merges(gm_tokenizer *tok, const gm_tokenizer_spec *spec,
                                   const char *what, gm_error *err) {
    scored_merge *list = NULL;
    size_t n = 0, cap = 0;
    for (int32_t id = 0; id < spec->n_tokens; id++) {
        if ((tok->entry[id].flags & GM_TOKF_MODEL) && tok->entry[id].model_len > 1 &&
            !splits_of(tok, spec, id, &list, &n, &cap)) {
            gm_free(list);
            return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory deriving merges", what);
        }
    }
    for (size_t i = 0; i < n; i++) list[i].seq = (uint32_t)i;
    if (n > 1) qsort(list, n, sizeof *list, cmp_scored);
    if (!merges_alloc(tok, n)) {
        gm_free(list);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu merges", what, n);
    }
    for (size_t r = 0; r < n; r++) merge_insert(tok, list[r].left, list[r].right, (uint32_t)r, list[r].merged);
    gm_free(list);
    return GM_OK;
}

/* ---- added-token tries ---- */

static bool trie_new_node(gm_tok_trie *t, uint8_t byte, uint32_t *idx) {
    if (t->n_nodes == t->cap_nodes) {
        uint32_t cap = t->cap_nodes ? t->cap_nodes * 2 : 1024;
        gm_tok_trie_node *nodes = gm_realloc(t->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) return false;
        t->nodes = nodes;
        t->cap_nodes = cap;
    }
    *idx = t->n_nodes++;
    t->nodes[*idx] = (gm_tok_trie_node){0, 0, -1, byte};
    return true;
}

/* Inserts pattern s -> id; a repeated pattern takes the later id. */
static bool trie_insert(gm_tok_trie *t, const char *s, size_t n, int32_t id) {
    if (n == 0) return true; /* HF ignores empty added tokens */
    uint32_t root = 0;
    if (t->n_nodes == 0 && !trie_new_node(t, 0, &root)) return false;
    uint32_t node = t->root[(uint8_t)s[0]];
    if (!node) {
        if (!trie_new_node(t, (uint8_t)s[0], &node)) return false;
        t->root[(uint8_t)s[0]] = node;
    }
    for (size_t i = 1; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        uint32_t ch = t->nodes[node].child;
        while (ch && t->nodes[ch].byte != c) ch = t->nodes[ch].sibling;
        if (!ch) {
            if (!trie_new_node(t, c, &ch)) return false;
            t->nodes[ch].sibling = t->nodes[node].child;
            t->nodes[node].child = ch;
        }
        node = ch;
    }
    t->nodes[node].token = id;
    return true;
}

static bool build_tries(gm_tokenizer *tok, const gm_tokenizer_spec *spec) {
    gm_buf norm = {0};
    bool ok = true;
    for (size_t i = 0; i < spec->n_added && ok; i++) {
        const gm_added_token *a = &spec->added[i];
        if (!(a->flags & GM_ADDED_NORMALIZED)) {
            ok = trie_insert(&tok->raw_trie, a->content.ptr, a->content.len, a->id);
            continue;
        }
        /* HF refresh_added_tokens: normalized tokens match their normalized content. */
        norm.len = 0;
        ok = gm_tok_normalize(tok->norm, tok->n_norm, a->content.ptr, a->content.len, &norm) &&
             trie_insert(&tok->norm_trie, norm.data, norm.len, a->id);
    }
    gm_buf_free(&norm);
    return ok;
}

/* ---- build / free ---- */

static gm_status build_tables(gm_tokenizer *tok, const gm_tokenizer_spec *spec, const char *what,
                              gm_error *err) {
    gm_buf arena = {0}, tmp = {0};
    uint32_t offs[GM_TOKENIZER_MAX_NORM_STEPS][2], split_off = 0;
    bool ok = add_model_tokens(tok, spec, &arena) && add_added_tokens(tok, spec, &arena) &&
              add_decoded(tok, spec, &arena, &tmp) &&
              add_config_strings(tok, spec, &arena, offs, &split_off) && gm_buf_reserve(&arena, 1);
    gm_buf_free(&tmp);
    tok->arena = arena.data;
    tok->arena_len = arena.len;
    if (!ok) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory for the vocabulary", what);
    fix_config_pointers(tok, offs, split_off);
    if (!build_maps(tok, spec))
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory for the vocabulary", what);
    gm_status st = spec->merges || !spec->scores ? add_merges(tok, spec, what, err)
                                                 : synthesize_merges(tok, spec, what, err);
    if (st != GM_OK) return st;
    if (!build_tries(tok, spec))
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory for the added tokens", what);
    return GM_OK;
}

gm_status gm_tokenizer_build(const gm_tokenizer_spec *spec, const char *what, gm_tokenizer **out,
                             gm_error *err) {
    if (!out || !spec) return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenizer_build: out or spec is NULL");
    *out = NULL;
    if (!what) what = "tokenizer";
    int32_t n_vocab = 0;
    gm_status st = check_spec(spec, what, &n_vocab, err);
    if (st != GM_OK) return st;
    gm_tokenizer *tok = gm_calloc(1, sizeof *tok);
    if (!tok) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    tok->n_vocab = n_vocab;
    tok->entry = gm_calloc((size_t)GM_MAX(n_vocab, 1), sizeof *tok->entry);
    if (!tok->entry) {
        gm_tokenizer_free(tok);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    for (int32_t id = 0; id < n_vocab; id++) tok->entry[id].model_off = GM_TOK_NONE;
    tok->byte_fallback = spec->byte_fallback;
    tok->fuse_unk = spec->fuse_unk;
    tok->ignore_merges = spec->ignore_merges;
    tok->dec_byte_fallback = spec->dec_byte_fallback;
    tok->unk_id = spec->unk_id;
    tok->bos_id = spec->bos_id;
    tok->eos_id = spec->eos_id;
    st = build_tables(tok, spec, what, err);
    if (st != GM_OK) {
        gm_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return GM_OK;
}

void gm_tokenizer_free(gm_tokenizer *tok) {
    if (!tok) return;
    strmap_free(&tok->model_map);
    strmap_free(&tok->added_map);
    gm_free(tok->merges);
    gm_free(tok->raw_trie.nodes);
    gm_free(tok->norm_trie.nodes);
    gm_free(tok->arena);
    gm_free(tok->entry);
    gm_free(tok);
}

/* ---- public getters ---- */

int32_t gm_tokenizer_vocab_size(const gm_tokenizer *tok) { return tok ? tok->n_vocab : 0; }
int32_t gm_tokenizer_bos_id(const gm_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int32_t gm_tokenizer_eos_id(const gm_tokenizer *tok) { return tok ? tok->eos_id : -1; }

/* Added tokens first, then the model vocabulary (HF AddedVocabulary::token_to_id). */
int32_t gm_tokenizer_token_id(const gm_tokenizer *tok, const char *token) {
    if (!tok || !token) return -1;
    size_t n = strlen(token);
    int32_t id = strmap_find(tok->arena, &tok->added_map, token, n);
    return id >= 0 ? id : gm_tok_model_find(tok, token, n);
}

const char *gm_token_bytes(const gm_tokenizer *tok, int32_t id, size_t *len) {
    if (len) *len = 0;
    if (!tok || id < 0 || id >= tok->n_vocab || !(tok->entry[id].flags & GM_TOKF_EXISTS)) return NULL;
    if (len) *len = tok->entry[id].dec_len;
    return tok->arena + tok->entry[id].dec_off;
}

int gm_token_is_special(const gm_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || id >= tok->n_vocab) return 0;
    return (tok->entry[id].flags & GM_TOKF_SPECIAL) != 0;
}
