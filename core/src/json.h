/*
 * json.h - a strict, zero-copy JSON reader.
 *
 * gm_json_parse turns a whole document into a flat array of tokens in
 * document order (one allocation). Each token records where its text is
 * and how far its subtree extends, so walking an object or an array is an
 * index loop with no recursion and no further allocation:
 *
 *   for (int i = gm_json_first(doc, obj); i >= 0; i = gm_json_next(doc, i)) ...
 *
 * Strings are kept escaped in the source; gm_json_string_copy unescapes on
 * demand. Used for config.json, safetensors headers and the 33 MB
 * tokenizer.json (parsed in ~0.1 s).
 */
#ifndef GM_JSON_H
#define GM_JSON_H

#include "gm_internal.h"

typedef enum gm_json_type {
    GM_JSON_NULL,
    GM_JSON_FALSE,
    GM_JSON_TRUE,
    GM_JSON_NUMBER,
    GM_JSON_STRING,
    GM_JSON_ARRAY,
    GM_JSON_OBJECT
} gm_json_type;

typedef struct gm_json_token {
    uint8_t type;      /* gm_json_type */
    uint8_t has_escape;/* strings: contains a backslash escape */
    uint32_t start;    /* strings: first byte after the quote; others: first byte */
    uint32_t len;      /* strings: raw (escaped) byte length; numbers/literals: text length */
    uint32_t size;     /* arrays: elements; objects: key/value pairs */
    uint32_t end;      /* index of the first token after this subtree */
} gm_json_token;

typedef struct gm_json {
    const char *src;       /* the document (not owned) */
    size_t src_len;
    gm_json_token *tok;    /* tok[0] is the root */
    uint32_t n_tok;
} gm_json;

/*
 * Parses `len` bytes at `src` (which must outlive the document). Documents
 * over 4 GiB, nesting deeper than 512, trailing garbage and invalid
 * escapes are errors. `what` names the document in error messages.
 */
GM_INTERNAL gm_status gm_json_parse(const char *src, size_t len, const char *what,
                                    gm_json *out, gm_error *err);
GM_INTERNAL void gm_json_free(gm_json *doc);

/* Type of token i; a missing value (i < 0, as gm_json_get returns) reads as null. */
static inline gm_json_type gm_json_kind(const gm_json *d, int i) {
    return i < 0 ? GM_JSON_NULL : (gm_json_type)d->tok[i].type;
}

/*
 * Iteration. For an array, gm_json_first gives the first element; for an
 * object, the first KEY (its value is key + 1). gm_json_next skips a whole
 * element (array) or a whole key/value pair (object) - pass `in_object`
 * accordingly via the two helpers below. Both return -1 at the end.
 */
GM_INTERNAL int gm_json_first(const gm_json *d, int container);
GM_INTERNAL int gm_json_next_elem(const gm_json *d, int container, int elem);
GM_INTERNAL int gm_json_next_key(const gm_json *d, int container, int key);

/* Value token of `key` in object `obj`, or -1 (also when obj is not an object). */
GM_INTERNAL int gm_json_get(const gm_json *d, int obj, const char *key);

/* True when string token i equals the NUL-terminated s (after unescaping). */
GM_INTERNAL bool gm_json_string_eq(const gm_json *d, int i, const char *s);

/*
 * Unescapes string token i into buf (NUL-terminated); returns the byte
 * length, or (size_t)-1 if it does not fit in cap-1 bytes. The unescaped
 * length is never longer than the raw length, so cap = len + 1 always fits.
 */
GM_INTERNAL size_t gm_json_string_copy(const gm_json *d, int i, char *buf, size_t cap);
/* Heap-allocated unescaped copy (NULL on OOM or when i is not a string). */
GM_INTERNAL char *gm_json_string_dup(const gm_json *d, int i, size_t *len);

/* Numbers: false when token i is not a number or out of range for the type. */
GM_INTERNAL bool gm_json_number(const gm_json *d, int i, double *out);
GM_INTERNAL bool gm_json_int64(const gm_json *d, int i, int64_t *out);

#endif /* GM_JSON_H */
