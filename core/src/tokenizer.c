/*
 * tokenizer.c - gm_tokenize and gm_detokenize (see tokenizer.h for the
 * pipeline and the tables they read).
 *
 * Both only read the tokenizer: every scratch buffer lives in a per-call
 * context, so one tokenizer serves any number of threads.
 */
#include "tokenizer.h"
#include "utf8.h"

/* Longest text gm_tokenize takes: normalized words must stay below 2^31 bytes. */
#define GM_TOKENIZE_MAX_TEXT ((size_t)1 << 28)

/* ------------------------------------------------------------------ */
/* Encoding: context and output                                       */
/* ------------------------------------------------------------------ */

/* A symbol of the word being merged (HF models/bpe/word.rs Symbol). */
typedef struct bpe_symbol {
    int32_t id;
    int32_t prev, next; /* neighbours still alive, -1 at the ends */
    uint32_t len;       /* byte length; 0 once merged into its left neighbour */
} bpe_symbol;

/*
 * A candidate merge of symbol `pos` with its right neighbour (HF word.rs
 * Merge), with the pair it was made for: the entry is stale once either
 * symbol changed. (HF re-looks the current pair up and compares the merged
 * id; a changed pair always spans more bytes, so it never merges into the
 * same token and the two checks agree.)
 */
typedef struct bpe_merge {
    uint32_t rank;
    uint32_t pos;
    int32_t left, right, merged;
} bpe_merge;

typedef struct enc_ctx {
    const gm_tokenizer *tok;
    unsigned flags;          /* GM_TOKENIZE_* */
    int32_t *ids;            /* caller's buffer: ids past cap are counted, not written */
    size_t cap, n;
    gm_buf norm;             /* the current segment, normalized */
    bpe_symbol *sym;
    size_t sym_cap;
    bpe_merge *heap;
    size_t heap_cap, heap_n;
    bool oom;
} enc_ctx;

static void emit(enc_ctx *c, int32_t id) {
    if (c->n < c->cap) c->ids[c->n] = id;
    c->n++;
}

/* Room for the symbols and merge candidates of an n_bytes word (symbol links are int32). */
static bool reserve_word(enc_ctx *c, size_t n_bytes) {
    if (n_bytes <= c->sym_cap) return true;
    if (n_bytes >= INT32_MAX) return false;
    size_t cap = GM_MAX(n_bytes, c->sym_cap * 2);
    size_t hbytes;
    if (cap > SIZE_MAX / 4 || !gm_mul_size(cap * 3 + 1, sizeof *c->heap, &hbytes)) return false;
    bpe_symbol *s = gm_realloc(c->sym, cap * sizeof *s);
    if (!s) return false;
    c->sym = s;
    bpe_merge *h = gm_realloc(c->heap, hbytes);
    if (!h) return false;
    c->heap = h;
    c->sym_cap = cap;
    c->heap_cap = cap * 3 + 1;
    return true;
}

/* ------------------------------------------------------------------ */
/* BPE merge loop: a min-heap on (rank, position)                     */
/* ------------------------------------------------------------------ */

static bool merge_before(const bpe_merge *a, const bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(enc_ctx *c, bpe_merge m) {
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!merge_before(&m, &c->heap[parent])) break;
        c->heap[i] = c->heap[parent];
        i = parent;
    }
    c->heap[i] = m;
}

static bpe_merge heap_pop(enc_ctx *c) {
    bpe_merge top = c->heap[0], last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t kid = 2 * i + 1;
        if (kid >= n) break;
        if (kid + 1 < n && merge_before(&c->heap[kid + 1], &c->heap[kid])) kid++;
        if (!merge_before(&c->heap[kid], &last)) break;
        c->heap[i] = c->heap[kid];
        i = kid;
    }
    if (n) c->heap[i] = last;
    return top;
}

static void prefetch_pair(const gm_tokenizer *tok, int32_t left, int32_t right) {
    GM_TOK_PREFETCH(&tok->merges[gm_tok_pair_hash((uint32_t)left, (uint32_t)right) & tok->merge_mask]);
}

/* Queues the merge of symbol `pos` with its right neighbour, if the pair merges. */
static void queue_pair(enc_ctx *c, int32_t pos) {
    if (pos < 0 || c->sym[pos].next < 0) return;
    int32_t left = c->sym[pos].id, right = c->sym[c->sym[pos].next].id;
    const gm_tok_merge_slot *m = gm_tok_merge_find(c->tok, left, right);
    if (m) heap_push(c, (bpe_merge){m->rank, (uint32_t)pos, left, right, m->merged});
}

/* The merge table is larger than the caches: look pairs up a block at a time, prefetched. */
static void queue_initial_pairs(enc_ctx *c, size_t n_sym) {
    const size_t block = 16;
    for (size_t i0 = 0; i0 + 1 < n_sym; i0 += block) {
        size_t end = GM_MIN(i0 + block, n_sym - 1);
        for (size_t i = i0; i < end; i++) prefetch_pair(c->tok, c->sym[i].id, c->sym[i + 1].id);
        for (size_t i = i0; i < end; i++) queue_pair(c, (int32_t)i);
    }
}

/*
 * HF Word::merge_all: repeatedly apply the lowest-rank merge (leftmost on
 * ties). Entries made stale by earlier merges are skipped when popped.
 */
static void merge_all(enc_ctx *c, size_t n_sym) {
    bpe_symbol *sym = c->sym;
    c->heap_n = 0;
    queue_initial_pairs(c, n_sym);
    while (c->heap_n) {
        bpe_merge top = heap_pop(c);
        bpe_symbol *s = &sym[top.pos];
        if (s->len == 0 || s->next < 0 || s->id != top.left || sym[s->next].id != top.right) continue;
        bpe_symbol *right = &sym[s->next];
        s->id = top.merged;
        s->len += right->len;
        s->next = right->next;
        right->len = 0;
        if (s->next >= 0) {
            sym[s->next].prev = (int32_t)top.pos;
            prefetch_pair(c->tok, s->id, sym[s->next].id);
        }
        if (s->prev >= 0) prefetch_pair(c->tok, sym[s->prev].id, s->id);
        queue_pair(c, s->prev);
        queue_pair(c, (int32_t)top.pos);
    }
}

/* ------------------------------------------------------------------ */
/* BPE on one word                                                    */
/* ------------------------------------------------------------------ */

static size_t add_symbol(enc_ctx *c, size_t n, int32_t id, size_t len) {
    c->sym[n] = (bpe_symbol){id, (int32_t)n - 1, -1, (uint32_t)len};
    if (n > 0) c->sym[n - 1].next = (int32_t)n;
    return n + 1;
}

static int32_t char_id(const gm_tokenizer *tok, const char *s, size_t len) {
    unsigned char b = (unsigned char)s[0];
    return len == 1 && b < 0x80 ? tok->ascii_id[b] : gm_tok_model_find(tok, s, len);
}

static bool all_bytes_known(const gm_tokenizer *tok, const char *s, size_t len) {
    for (size_t k = 0; k < len; k++)
        if (tok->byte_id[(unsigned char)s[k]] < 0) return false;
    return true;
}

/*
 * The initial symbols of a word, one per character (HF BPE::merge_word):
 * a character that is not a token becomes its <0xNN> byte tokens
 * (byte_fallback), else the unknown token - consecutive ones fused into one
 * when fuse_unk - else nothing. As upstream, a pending unknown is written
 * out only when a known character or the end of the word follows.
 */
static size_t initial_symbols(enc_ctx *c, const char *s, size_t n) {
    const gm_tokenizer *tok = c->tok;
    size_t n_sym = 0, unk_len = 0;
    for (size_t i = 0; i < n;) {
        size_t len = GM_MIN(gm_utf8_char_len((unsigned char)s[i]), n - i);
        int32_t id = char_id(tok, s + i, len);
        if (id >= 0) {
            if (unk_len) n_sym = add_symbol(c, n_sym, tok->unk_id, unk_len);
            unk_len = 0;
            n_sym = add_symbol(c, n_sym, id, len);
        } else if (tok->byte_fallback && all_bytes_known(tok, s + i, len)) {
            for (size_t k = 0; k < len; k++)
                n_sym = add_symbol(c, n_sym, tok->byte_id[(unsigned char)s[i + k]], 1);
        } else if (tok->unk_id >= 0) {
            if (unk_len && !tok->fuse_unk) {
                n_sym = add_symbol(c, n_sym, tok->unk_id, unk_len);
                unk_len = 0;
            }
            unk_len += len;
        }
        i += len;
    }
    if (unk_len) n_sym = add_symbol(c, n_sym, tok->unk_id, unk_len);
    return n_sym;
}

static void bpe_word(enc_ctx *c, const char *s, size_t n) {
    if (n == 0 || c->oom) return;
    if (c->tok->ignore_merges) { /* HF tokenize_with_cache: a whole-word hit skips the merges */
        int32_t id = gm_tok_model_find(c->tok, s, n);
        if (id >= 0) {
            emit(c, id);
            return;
        }
    }
    if (!reserve_word(c, n)) {
        c->oom = true;
        return;
    }
    size_t n_sym = initial_symbols(c, s, n);
    if (n_sym == 0) return;
    merge_all(c, n_sym);
    for (int32_t i = 0; i >= 0; i = c->sym[i].next) emit(c, c->sym[i].id);
}

/* ------------------------------------------------------------------ */
/* Pre-tokenizer: HF Split on a literal, by delimiter behaviour       */
/* ------------------------------------------------------------------ */

static bool match_at(const char *s, size_t n, size_t i, const gm_str *p) {
    return i + p->len <= n && s[i] == p->ptr[0] && memcmp(s + i, p->ptr, p->len) == 0;
}

static void pre_tokenize(enc_ctx *c, const char *s, size_t n) {
    const gm_tokenizer *tok = c->tok;
    const gm_str *p = &tok->split_pattern;
    if (tok->split == GM_SPLIT_NONE) {
        bpe_word(c, s, n);
        return;
    }
    size_t word = 0, i = 0;
    while (i < n) {
        const char *hit = memchr(s + i, p->ptr[0], n - i);
        if (!hit) break;
        i = (size_t)(hit - s);
        if (!match_at(s, n, i, p)) {
            i++;
            continue;
        }
        size_t end = i + p->len;
        switch (tok->split) {
        case GM_SPLIT_REMOVED:
            bpe_word(c, s + word, i - word);
            word = end;
            break;
        case GM_SPLIT_ISOLATED:
            bpe_word(c, s + word, i - word);
            bpe_word(c, s + i, p->len);
            word = end;
            break;
        case GM_SPLIT_MERGED_WITH_PREVIOUS:
            bpe_word(c, s + word, end - word);
            word = end;
            break;
        case GM_SPLIT_MERGED_WITH_NEXT:
            bpe_word(c, s + word, i - word);
            word = i;
            break;
        case GM_SPLIT_CONTIGUOUS:
            while (match_at(s, n, end, p)) end += p->len;
            bpe_word(c, s + word, i - word);
            bpe_word(c, s + i, end - i);
            word = end;
            break;
        case GM_SPLIT_NONE:
            break;
        }
        i = end;
    }
    bpe_word(c, s + word, n - word);
}

/* ------------------------------------------------------------------ */
/* Added tokens (HF AddedVocabulary::find_matches)                    */
/* ------------------------------------------------------------------ */

/* Unicode White_Space, what Rust's regex \s matches. */
static bool is_space_cp(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/*
 * Approximation of Rust's Unicode \w used by single_word: ASCII letters,
 * digits and '_', and any other code point outside whitespace and the
 * main punctuation / symbol / emoji blocks. (Exact \w needs the Unicode
 * tables; no Gemma added token sets single_word.)
 */
static bool is_word_cp(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z') || cp == '_';
    if (is_space_cp(cp)) return false;
    if ((cp >= 0xA1 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7) return false;
    if ((cp >= 0x2010 && cp <= 0x2BFF) || (cp >= 0x3001 && cp <= 0x303F)) return false;
    if ((cp >= 0xFF01 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20)) return false;
    if (cp >= 0x1F000 && cp <= 0x1FAFF) return false;
    return true;
}

static uint32_t decode_cp(const char *str, size_t n, size_t i, size_t *len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t l = GM_MIN(gm_utf8_char_len(s[i]), n - i);
    static const unsigned char lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = s[i] & lead_mask[l];
    for (size_t k = 1; k < l; k++) cp = cp << 6 | (s[i + k] & 0x3F);
    *len = l;
    return cp;
}

/* Start of the character that ends right before byte i (i > 0). */
static size_t prev_char_start(const char *s, size_t i) {
    size_t j = i - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80 && i - j < 4) j--;
    return j;
}

static bool word_before(const char *s, size_t i) {
    size_t len;
    return i > 0 && is_word_cp(decode_cp(s, i, prev_char_start(s, i), &len));
}

static bool word_after(const char *s, size_t n, size_t i) {
    size_t len;
    return i < n && is_word_cp(decode_cp(s, n, i, &len));
}

/* Start of the run of whitespace that ends at byte i. */
static size_t space_run_start(const char *s, size_t i) {
    while (i > 0) {
        size_t j = prev_char_start(s, i), len;
        if (!is_space_cp(decode_cp(s, i, j, &len))) break;
        i = j;
    }
    return i;
}

static size_t space_run_end(const char *s, size_t n, size_t i) {
    size_t len;
    while (i < n && is_space_cp(decode_cp(s, n, i, &len))) i += len;
    return i;
}

static bool token_allowed(const enc_ctx *c, int32_t id) {
    return (c->flags & GM_TOKENIZE_PARSE_SPECIAL) || !(c->tok->entry[id].flags & GM_TOKF_SPECIAL);
}

/* Longest pattern of trie t that starts at s[i] and may be used; its id, or -1. */
static int32_t trie_longest(const enc_ctx *c, const gm_tok_trie *t, const char *s, size_t n,
                            size_t i, size_t *len) {
    uint32_t node = t->root[(unsigned char)s[i]];
    int32_t best = -1;
    for (size_t k = i + 1; node; k++) {
        int32_t id = t->nodes[node].token;
        if (id >= 0 && token_allowed(c, id)) {
            best = id;
            *len = k - i;
        }
        if (k >= n) break;
        uint32_t ch = t->nodes[node].child;
        while (ch && t->nodes[ch].byte != (unsigned char)s[k]) ch = t->nodes[ch].sibling;
        node = ch;
    }
    return best;
}

typedef struct added_match {
    size_t start, end;
    int32_t id;
} added_match;

/*
 * The next added token in s at or after `from`: leftmost, then longest
 * (aho-corasick LeftmostLongest). A single_word token inside a word is
 * skipped and the search resumes after it; lstrip/rstrip widen the match
 * over neighbouring whitespace, never back past `plain_start` (the end of
 * the previous match). Special tokens are only candidates with
 * GM_TOKENIZE_PARSE_SPECIAL; without it they are plain text, as with HF
 * split_special_tokens=True / llama.cpp parse_special=false.
 */
static bool next_added(const enc_ctx *c, const gm_tok_trie *t, const char *s, size_t n,
                       size_t from, size_t plain_start, added_match *m) {
    if (t->n_nodes == 0) return false;
    for (size_t i = from; i < n; i++) {
        if (!t->root[(unsigned char)s[i]]) continue;
        size_t len = 0;
        int32_t id = trie_longest(c, t, s, n, i, &len);
        if (id < 0) continue;
        uint32_t fl = c->tok->entry[id].flags;
        size_t start = i, end = i + len;
        if ((fl & GM_TOKF_SINGLE_WORD) && (word_before(s, start) || word_after(s, n, end))) {
            i = end - 1;
            continue;
        }
        if (fl & GM_TOKF_LSTRIP) start = GM_MAX(space_run_start(s, start), plain_start);
        if (fl & GM_TOKF_RSTRIP) end = space_run_end(s, n, end);
        *m = (added_match){start, end, id};
        return true;
    }
    return false;
}

/* A piece of normalized text: normalized added tokens, then the pre-tokenizer. */
static void encode_normalized_piece(enc_ctx *c, const char *s, size_t n) {
    size_t plain = 0;
    added_match m;
    while (next_added(c, &c->tok->norm_trie, s, n, plain, plain, &m)) {
        pre_tokenize(c, s + plain, m.start - plain);
        emit(c, m.id);
        plain = m.end;
    }
    pre_tokenize(c, s + plain, n - plain);
}

/* A segment of raw text between two added tokens (HF: normalized on its own). */
static void encode_segment(enc_ctx *c, const char *s, size_t n) {
    if (n == 0 || c->oom) return;
    c->norm.len = 0;
    if (!gm_tok_normalize(c->tok->norm, c->tok->n_norm, s, n, &c->norm)) {
        c->oom = true;
        return;
    }
    encode_normalized_piece(c, c->norm.data ? c->norm.data : "", c->norm.len);
}

static void encode_text(enc_ctx *c, const char *s, size_t n) {
    size_t plain = 0;
    added_match m;
    while (next_added(c, &c->tok->raw_trie, s, n, plain, plain, &m)) {
        encode_segment(c, s + plain, m.start - plain);
        emit(c, m.id);
        plain = m.end;
    }
    encode_segment(c, s + plain, n - plain);
}

gm_status gm_tokenize(const gm_tokenizer *tok, const char *text, size_t len, unsigned flags,
                      int32_t *ids, size_t cap, size_t *n_ids, gm_error *err) {
    if (n_ids) *n_ids = 0;
    if (!tok || !n_ids || (!text && len) || (!ids && cap))
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenize: NULL tokenizer, text, ids or n_ids");
    if (flags & ~(unsigned)(GM_TOKENIZE_ADD_BOS | GM_TOKENIZE_PARSE_SPECIAL))
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenize: unknown flags 0x%x", flags);
    size_t bad = 0;
    if (!gm_utf8_valid(text, len, &bad))
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenize: invalid UTF-8 at byte offset %zu (byte 0x%02X)",
                       bad, (unsigned)(unsigned char)text[bad]);
    if (len > GM_TOKENIZE_MAX_TEXT)
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenize: text of %zu bytes is over the %zu-byte limit", len,
                       (size_t)GM_TOKENIZE_MAX_TEXT);
    enc_ctx c = {.tok = tok, .flags = flags, .ids = ids, .cap = cap};
    if ((flags & GM_TOKENIZE_ADD_BOS) && tok->bos_id >= 0) emit(&c, tok->bos_id);
    encode_text(&c, text ? text : "", len);
    gm_buf_free(&c.norm);
    gm_free(c.sym);
    gm_free(c.heap);
    if (c.oom) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "gm_tokenize: out of memory (%zu bytes of text)", len);
    *n_ids = c.n;
    if (c.n > cap)
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_tokenize: output buffer too small: %zu ids needed, capacity %zu",
                       c.n, cap);
    return GM_OK;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                           */
/* ------------------------------------------------------------------ */

typedef struct text_sink {
    char *dst;
    size_t cap, n; /* bytes past cap are counted, not written */
} text_sink;

static void put(text_sink *o, const char *s, size_t n) {
    if (o->n < o->cap) memcpy(o->dst + o->n, s, GM_MIN(n, o->cap - o->n));
    o->n += n;
}

/* Incremental strict UTF-8 check (the rules of utf8.h, as Rust's String::from_utf8). */
typedef struct utf8_check {
    unsigned need;          /* continuation bytes still expected */
    unsigned char lo, hi;   /* allowed range of the next continuation byte */
    bool bad;
} utf8_check;

static void utf8_feed(utf8_check *u, unsigned char b) {
    if (u->bad) return;
    if (u->need) {
        if (b < u->lo || b > u->hi) u->bad = true;
        u->lo = 0x80;
        u->hi = 0xBF;
        u->need--;
        return;
    }
    if (b < 0x80) return;
    u->lo = 0x80;
    u->hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) u->need = 1;
    else if (b >= 0xE0 && b <= 0xEF) {
        u->need = 2;
        if (b == 0xE0) u->lo = 0xA0;
        if (b == 0xED) u->hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        u->need = 3;
        if (b == 0xF0) u->lo = 0x90;
        if (b == 0xF4) u->hi = 0x8F;
    } else u->bad = true;
}

static bool skipped(const gm_tokenizer *tok, int32_t id, int skip_special) {
    return skip_special && (tok->entry[id].flags & GM_TOKF_SPECIAL);
}

/*
 * A run of byte tokens starting at ids[i] (skipped specials are removed
 * before the decoder, so they do not break a run). HF ByteFallback: a run
 * that is valid UTF-8 becomes its bytes, otherwise every byte token of the
 * run becomes U+FFFD. Returns the index after the run.
 */
static size_t decode_byte_run(const gm_tokenizer *tok, const int32_t *ids, size_t n, size_t i,
                              int skip_special, text_sink *o) {
    utf8_check u = {0};
    size_t end = i;
    for (; end < n; end++) {
        const gm_tok_entry *e = &tok->entry[ids[end]];
        if (skipped(tok, ids[end], skip_special)) continue;
        if (!(e->flags & GM_TOKF_BYTE)) break;
        utf8_feed(&u, (unsigned char)tok->arena[e->dec_off]);
    }
    bool valid = !u.bad && u.need == 0;
    for (size_t k = i; k < end; k++) {
        if (skipped(tok, ids[k], skip_special)) continue;
        if (valid) put(o, tok->arena + tok->entry[ids[k]].dec_off, 1);
        else put(o, "\xEF\xBF\xBD", 3);
    }
    return end;
}

static gm_status check_ids(const gm_tokenizer *tok, const int32_t *ids, size_t n, gm_error *err) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_vocab)
            return gm_fail(err, GM_ERR_ARGUMENT,
                           "gm_detokenize: token id %d at position %zu is out of range [0, %d)",
                           (int)id, i, (int)tok->n_vocab);
        if (!(tok->entry[id].flags & GM_TOKF_EXISTS))
            return gm_fail(err, GM_ERR_ARGUMENT,
                           "gm_detokenize: token id %d at position %zu has no vocabulary entry",
                           (int)id, i);
    }
    return GM_OK;
}

gm_status gm_detokenize(const gm_tokenizer *tok, const int32_t *ids, size_t n_ids,
                        int skip_special, char *text, size_t cap, size_t *len, gm_error *err) {
    if (len) *len = 0;
    if (!tok || !len || (!ids && n_ids) || (!text && cap))
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_detokenize: NULL tokenizer, ids, text or len");
    gm_status st = check_ids(tok, ids, n_ids, err);
    if (st != GM_OK) return st;
    text_sink o = {text, cap, 0};
    for (size_t i = 0; i < n_ids;) {
        const gm_tok_entry *e = &tok->entry[ids[i]];
        if (skipped(tok, ids[i], skip_special)) {
            i++;
        } else if (e->flags & GM_TOKF_BYTE) {
            i = decode_byte_run(tok, ids, n_ids, i, skip_special, &o);
        } else {
            put(&o, tok->arena + e->dec_off, e->dec_len);
            i++;
        }
    }
    *len = o.n;
    if (o.n >= cap)
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_detokenize: output buffer too small: %zu bytes needed",
                       o.n + 1);
    text[o.n] = 0;
    return GM_OK;
}
