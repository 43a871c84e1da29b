/*
 * tokenizer.h - internals of gm_tokenizer (the public half is in gemma3n.h).
 *
 * A tokenizer is built once from a gm_tokenizer_spec - plain arrays that a
 * tokenizer.json (tokenizer_json.c) or a GGUF file's tokenizer.ggml.* keys
 * can both be turned into - and is immutable afterwards, so any number of
 * threads may encode and decode with it at once.
 *
 * The pipeline is the one of Hugging Face `tokenizers` for a BPE model
 * (tokenizer/mod.rs `encode_single_sequence`):
 *
 *   raw text --added tokens (non-normalized)--> segments
 *            --normalizer--> --added tokens (normalized)--> --pre-tokenizer-->
 *            words --BPE (merges by rank, byte fallback)--> ids
 *
 * and decoding is the decoder chain Replace -> ByteFallback -> Fuse
 * (decoders/byte_fallback.rs). Files:
 *   tokenizer_build.c  spec -> tables (vocab hash, merge hash, added-token
 *                      trie, decoded bytes per token); free; getters
 *   tokenizer.c        gm_tokenize / gm_detokenize
 *   tokenizer_json.c   tokenizer.json -> spec
 */
#ifndef GM_TOKENIZER_H
#define GM_TOKENIZER_H

#include "gm_internal.h"

/* A byte string that need not be NUL-terminated. */
typedef struct gm_str {
    const char *ptr;
    size_t len;
} gm_str;

/* Flags of an added token (HF AddedToken fields). */
enum {
    GM_ADDED_SPECIAL = 1u << 0,     /* control token: matched only with GM_TOKENIZE_PARSE_SPECIAL,
                                       dropped by skip_special */
    GM_ADDED_LSTRIP = 1u << 1,      /* the match absorbs the whitespace on its left */
    GM_ADDED_RSTRIP = 1u << 2,      /* ... and on its right */
    GM_ADDED_SINGLE_WORD = 1u << 3, /* matches only when not inside a word */
    GM_ADDED_NORMALIZED = 1u << 4   /* matched against the normalized text */
};

typedef struct gm_added_token {
    int32_t id;
    gm_str content;
    unsigned flags; /* GM_ADDED_* */
} gm_added_token;

/* One step of the normalizer (HF normalizers Replace with a String pattern, and Prepend). */
typedef enum gm_norm_kind { GM_NORM_REPLACE, GM_NORM_PREPEND } gm_norm_kind;

typedef struct gm_norm_step {
    gm_norm_kind kind;
    gm_str pattern; /* REPLACE: the literal to find (non-empty) */
    gm_str content; /* REPLACE: its replacement; PREPEND: the prefix */
} gm_norm_step;

/* HF SplitDelimiterBehavior of the Split pre-tokenizer. */
typedef enum gm_split_behavior {
    GM_SPLIT_NONE = 0, /* no pre-tokenizer: a segment is one word */
    GM_SPLIT_REMOVED,
    GM_SPLIT_ISOLATED,
    GM_SPLIT_MERGED_WITH_PREVIOUS,
    GM_SPLIT_MERGED_WITH_NEXT,
    GM_SPLIT_CONTIGUOUS
} gm_split_behavior;

#define GM_TOKENIZER_MAX_NORM_STEPS 8
#define GM_TOKENIZER_MAX_ID ((int32_t)1 << 24) /* ids at or above are a format error */

/*
 * Everything a tokenizer is built from. Strings are copied by
 * gm_tokenizer_build, so the spec may point into a file that is unmapped
 * right after.
 */
typedef struct gm_tokenizer_spec {
    /* BPE model vocabulary: tokens[id] for id < n_tokens; ptr == NULL = no token. */
    int32_t n_tokens;
    const gm_str *tokens;

    /*
     * Merges, lowest rank first: merges[2*r], merges[2*r+1] are the left and
     * right token strings of rank r. Each side and their concatenation must
     * be in the vocabulary (HF models/bpe/model.rs, MergeTokenOutOfVocabulary).
     * When merges is NULL and scores is not, the merges are derived from the
     * scores as transformers' SentencePieceExtractor does (the GGUF "llama"
     * tokenizer model carries scores, not merges).
     */
    const gm_str *merges;
    size_t n_merges;
    const float *scores; /* [n_tokens] or NULL */

    bool byte_fallback;  /* unknown characters become <0xNN> tokens */
    bool fuse_unk;       /* consecutive unknown characters become one unk */
    bool ignore_merges;  /* a word that is a vocabulary entry is one token */
    int32_t unk_id;      /* -1: unknown characters are dropped (as HF without unk_token) */

    const gm_added_token *added; /* matched in the text before BPE; may reuse model ids */
    size_t n_added;

    gm_norm_step norm[GM_TOKENIZER_MAX_NORM_STEPS];
    int n_norm;

    gm_split_behavior split; /* pre-tokenizer: HF Split on the literal split_pattern */
    gm_str split_pattern;

    /* Decoder: Replace(dec_replace_pattern -> dec_replace_content), then ByteFallback, then Fuse. */
    gm_str dec_replace_pattern; /* ptr == NULL: no Replace step */
    gm_str dec_replace_content;
    bool dec_byte_fallback;

    int32_t bos_id, eos_id; /* -1 when the vocabulary has none */
} gm_tokenizer_spec;

/* Builds a tokenizer from `spec`; errors name `what` (a file name). */
GM_INTERNAL gm_status gm_tokenizer_build(const gm_tokenizer_spec *spec, const char *what,
                                         gm_tokenizer **out, gm_error *err);

/* Parses a tokenizer.json held in memory (`what` names it in errors). */
GM_INTERNAL gm_status gm_tokenizer_open_json(const char *json, size_t len, const char *what,
                                             gm_tokenizer **out, gm_error *err);

/* ------------------------------------------------------------------ */
/* Private to tokenizer*.c                                            */
/* ------------------------------------------------------------------ */

#define GM_TOK_NONE UINT32_MAX /* offset of a missing string */

/* Per-id flags. */
enum {
    GM_TOKF_EXISTS = 1u << 0,  /* the id has a token */
    GM_TOKF_MODEL = 1u << 1,   /* the id is in the BPE vocabulary */
    GM_TOKF_ADDED = 1u << 2,   /* the id is an added token */
    GM_TOKF_SPECIAL = 1u << 3, /* added with special = true */
    GM_TOKF_BYTE = 1u << 4,    /* "<0xNN>" decoded by ByteFallback to one byte */
    GM_TOKF_LSTRIP = 1u << 5,  /* added-token options, as GM_ADDED_* */
    GM_TOKF_RSTRIP = 1u << 6,
    GM_TOKF_SINGLE_WORD = 1u << 7
};

typedef struct gm_tok_entry {
    uint32_t text_off, text_len;   /* the token as written (added content wins over the model's) */
    uint32_t model_off, model_len; /* the BPE vocabulary string, GM_TOK_NONE if not in the model */
    uint32_t dec_off, dec_len;     /* bytes after the decoder (gm_token_bytes) */
    uint32_t flags;                /* GM_TOKF_* */
} gm_tok_entry;

/*
 * Open-addressing string -> id table with linear probing. A slot keeps the
 * key's place in the arena next to the id, so a lookup touches one slot
 * and the key's bytes (two cache misses at most).
 */
typedef struct gm_tok_slot {
    uint32_t hash;     /* high half of the key's 64-bit hash */
    uint32_t id1;      /* id + 1; 0 = empty slot */
    uint32_t off, len; /* the key in the arena */
} gm_tok_slot;

typedef struct gm_tok_strmap {
    gm_tok_slot *slots;
    uint32_t mask;
} gm_tok_strmap;

/* (left id, right id) -> (rank, merged id). left == UINT32_MAX marks an empty slot. */
typedef struct gm_tok_merge_slot {
    uint32_t left, right, rank;
    int32_t merged;
} gm_tok_merge_slot;

/* Byte trie of added-token patterns. Node 0 is unused (0 means "none"); root[] holds the first level. */
typedef struct gm_tok_trie_node {
    uint32_t child;   /* first child, 0 = none */
    uint32_t sibling; /* next sibling, 0 = none */
    int32_t token;    /* id of the pattern ending here, -1 = none */
    uint8_t byte;
} gm_tok_trie_node;

typedef struct gm_tok_trie {
    gm_tok_trie_node *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t root[256]; /* child of the root per first byte (0 = none) */
} gm_tok_trie;

struct gm_tokenizer {
    int32_t n_vocab;      /* every id in [0, n_vocab) may be decoded if it EXISTS */
    gm_tok_entry *entry;  /* [n_vocab] */
    char *arena;          /* all strings of `entry` and the configuration */
    size_t arena_len;

    gm_tok_strmap model_map; /* BPE vocabulary string -> id */
    gm_tok_strmap added_map; /* added-token content -> id (gm_tokenizer_token_id) */
    gm_tok_merge_slot *merges;
    uint32_t merge_mask;
    size_t n_merges;

    gm_tok_trie raw_trie;   /* added tokens matched in the raw text */
    gm_tok_trie norm_trie;  /* added tokens matched in the normalized text (patterns normalized) */

    int32_t byte_id[256];   /* model id of <0xNN>, -1 if missing */
    int32_t ascii_id[128];  /* model id of each 1-byte character, -1 if missing */
    bool byte_fallback, fuse_unk, ignore_merges, dec_byte_fallback;
    int32_t unk_id, bos_id, eos_id;

    gm_norm_step norm[GM_TOKENIZER_MAX_NORM_STEPS]; /* strings point into arena */
    int n_norm;
    gm_split_behavior split;
    gm_str split_pattern;
};

#if defined(__GNUC__)
#  define GM_TOK_PREFETCH(p) __builtin_prefetch(p)
#else
#  define GM_TOK_PREFETCH(p) ((void)(p))
#endif

/* 64-bit hash of a byte string (8 bytes per step; short strings dominate). */
static inline uint64_t gm_tok_hash(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)(uint8_t)s[i] << (8 * i);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static inline uint64_t gm_tok_pair_hash(uint32_t a, uint32_t b) {
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

/* Model id of the vocabulary string s[0..n), or -1. */
GM_INTERNAL int32_t gm_tok_model_find(const gm_tokenizer *tok, const char *s, size_t n);

/* Merge of (left, right): returns its slot, or NULL when the pair does not merge. */
static inline const gm_tok_merge_slot *gm_tok_merge_find(const gm_tokenizer *tok, int32_t left,
                                                         int32_t right) {
    if (!tok->merges) return NULL;
    uint32_t a = (uint32_t)left, b = (uint32_t)right;
    for (uint32_t i = (uint32_t)gm_tok_pair_hash(a, b) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
        const gm_tok_merge_slot *s = &tok->merges[i];
        if (s->left == UINT32_MAX) return NULL;
        if (s->left == a && s->right == b) return s;
    }
}

/* Byte length of the UTF-8 character starting with lead byte c (1 for invalid leads). */
static inline size_t gm_utf8_char_len(unsigned char c) {
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
}

/* Applies the normalizer steps to s[0..n), appending to out. False on OOM. */
GM_INTERNAL bool gm_tok_normalize(const gm_norm_step *steps, int n_steps, const char *s, size_t n,
                                  gm_buf *out);

#endif /* GM_TOKENIZER_H */
