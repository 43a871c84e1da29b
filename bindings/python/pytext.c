/*
 * pytext.c - tokenizer calls shared by Model (its tokenizer.json) and
 * Tokenizer (a standalone one): encode, decode, token bytes and lookups.
 *
 * `users` is the owner's count of calls running without the GIL (close()
 * refuses while it is non-zero). The core's tokenizer is immutable, so
 * any number of threads may encode and decode at once.
 */
#include "gmpy.h"

/* Grows a guess for a size the core reported as too small. */
static size_t grow(size_t needed) { return needed + needed / 4 + 16; }

int gmpy_encode_ids(const gm_tokenizer *tok, int *users, PyObject *text, int add_bos, int special,
                    gmpy_ids *out) {
    PyObject *bytes = gmpy_text_bytes(text, "text");
    if (!bytes) return -1;
    const char *s = PyBytes_AS_STRING(bytes);
    size_t len = (size_t)PyBytes_GET_SIZE(bytes), cap = len + 8, n = 0;
    unsigned flags = (add_bos ? GM_TOKENIZE_ADD_BOS : 0u) | (special ? GM_TOKENIZE_PARSE_SPECIAL : 0u);
    int rc = -1;
    for (;;) {
        if (!(out->v = PyMem_Malloc(cap * sizeof *out->v))) {
            PyErr_NoMemory();
            break;
        }
        gm_error err;
        gm_status st;
        (*users)++;
        Py_BEGIN_ALLOW_THREADS
        st = gm_tokenize(tok, s, len, flags, out->v, cap, &n, &err);
        Py_END_ALLOW_THREADS
        (*users)--;
        if (st == GM_OK) {
            out->n = n;
            rc = 0;
            break;
        }
        gmpy_ids_free(out);
        if (n <= cap) { /* a real error, not a small buffer */
            gmpy_raise(&err);
            break;
        }
        cap = n;
    }
    Py_DECREF(bytes);
    return rc;
}

PyObject *gmpy_encode(const gm_tokenizer *tok, int *users, PyObject *text, int add_bos, int special) {
    gmpy_ids ids;
    if (gmpy_encode_ids(tok, users, text, add_bos, special, &ids) < 0) return NULL;
    PyObject *list = gmpy_ids_to_list(ids.v, ids.n);
    gmpy_ids_free(&ids);
    return list;
}

/* Decodes ids with gm_detokenize into a new bytes object (the GIL released meanwhile). */
static PyObject *detokenize(const gm_tokenizer *tok, int *users, const gmpy_ids *ids, int skip_special) {
    size_t cap = ids->n * 8 + 32, len = 0;
    for (;;) {
        char *buf = PyMem_Malloc(cap + 1);
        if (!buf) return PyErr_NoMemory();
        gm_error err;
        gm_status st;
        (*users)++;
        Py_BEGIN_ALLOW_THREADS
        st = gm_detokenize(tok, ids->v, ids->n, skip_special, buf, cap + 1, &len, &err);
        Py_END_ALLOW_THREADS
        (*users)--;
        PyObject *r = st == GM_OK && len <= cap ? PyBytes_FromStringAndSize(buf, (Py_ssize_t)len) : NULL;
        PyMem_Free(buf);
        if (r) return r;
        if (st != GM_OK && len <= cap) return gmpy_raise(&err);
        if (st == GM_OK && len <= cap) return NULL; /* PyBytes failed */
        cap = grow(len);
    }
}

PyObject *gmpy_decode(const gm_tokenizer *tok, int *users, PyObject *ids_obj, int skip_special) {
    gmpy_ids ids;
    if (gmpy_ids_from_object(ids_obj, "ids", &ids) < 0) return NULL;
    PyObject *bytes = detokenize(tok, users, &ids, skip_special);
    gmpy_ids_free(&ids);
    if (!bytes) return NULL;
    /* The core writes U+FFFD for byte runs that are not UTF-8, so this never fails. */
    PyObject *s = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes), "replace");
    Py_DECREF(bytes);
    return s;
}

/* An id argument: an int inside the vocabulary, else ArgumentError. */
static int check_id(const gm_tokenizer *tok, PyObject *obj, int32_t *id) {
    if (!PyIndex_Check(obj) || PyBool_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "token id must be an int, not %.80s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t v = PyNumber_AsSsize_t(obj, NULL); /* clipped on overflow */
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v >= gm_tokenizer_vocab_size(tok)) {
        PyErr_Format(gmpy_ArgumentError, "token id %zd is outside the vocabulary [0, %d)", v,
                     (int)gm_tokenizer_vocab_size(tok));
        return -1;
    }
    *id = (int32_t)v;
    return 0;
}

/*
 * The raw bytes of the tokens, concatenated (no U+FFFD replacement: a
 * multi-byte character may be split between calls, as llama-cpp-python's
 * detokenize). Special tokens are written as their text unless skipped.
 */
PyObject *gmpy_decode_bytes(const gm_tokenizer *tok, PyObject *ids_obj, int skip_special) {
    gmpy_ids ids;
    if (gmpy_ids_from_object(ids_obj, "ids", &ids) < 0) return NULL;
    size_t total = 0;
    int32_t V = gm_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < ids.n; i++) {
        size_t len = 0;
        if (ids.v[i] < 0 || ids.v[i] >= V || !gm_token_bytes(tok, ids.v[i], &len)) {
            PyErr_Format(gmpy_ArgumentError, "ids[%zu] = %d is outside the vocabulary [0, %d)", i,
                         (int)ids.v[i], (int)V);
            gmpy_ids_free(&ids);
            return NULL;
        }
        if (!(skip_special && gm_token_is_special(tok, ids.v[i]))) total += len;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    char *dst = out ? PyBytes_AS_STRING(out) : NULL;
    for (size_t i = 0; dst && i < ids.n; i++) {
        size_t len = 0;
        const char *b = gm_token_bytes(tok, ids.v[i], &len);
        if (skip_special && gm_token_is_special(tok, ids.v[i])) continue;
        memcpy(dst, b, len);
        dst += len;
    }
    gmpy_ids_free(&ids);
    return out;
}

PyObject *gmpy_token_bytes(const gm_tokenizer *tok, PyObject *id_obj) {
    int32_t id;
    if (check_id(tok, id_obj, &id) < 0) return NULL;
    size_t len = 0;
    const char *b = gm_token_bytes(tok, id, &len);
    return PyBytes_FromStringAndSize(b ? b : "", (Py_ssize_t)len);
}

PyObject *gmpy_token_is_special(const gm_tokenizer *tok, PyObject *id_obj) {
    int32_t id;
    if (check_id(tok, id_obj, &id) < 0) return NULL;
    return PyBool_FromLong(gm_token_is_special(tok, id));
}

PyObject *gmpy_token_id(const gm_tokenizer *tok, PyObject *text) {
    if (!PyUnicode_Check(text))
        return PyErr_Format(PyExc_TypeError, "token must be str, not %.80s", Py_TYPE(text)->tp_name);
    const char *s = PyUnicode_AsUTF8(text);
    if (!s) return NULL;
    int32_t id = gm_tokenizer_token_id(tok, s);
    if (id < 0) Py_RETURN_NONE;
    return PyLong_FromLong(id);
}
