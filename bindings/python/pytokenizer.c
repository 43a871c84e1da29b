/*
 * pytokenizer.c - Tokenizer: a standalone tokenizer.json (no weights), for
 * preparing data or counting tokens. Immutable and thread-safe.
 */
#include "gmpy.h"

static const gm_tokenizer *get_tok(GmTokenizerObject *self) {
    if (!self->tok) gmpy_state_error("the tokenizer is closed");
    return self->tok;
}

static void close_tok(GmTokenizerObject *self) {
    gm_tokenizer_free(self->tok);
    self->tok = NULL;
}

static int Tokenizer_init(GmTokenizerObject *self, PyObject *args, PyObject *kwds) {
    PyObject *path, *fs = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Tokenizer", GMPY_KWLIST("path"), &path)) return -1;
    if (self->users) {
        gmpy_state_error("cannot re-open a tokenizer that another thread is using");
        return -1;
    }
    if (!PyUnicode_FSConverter(path, &fs)) return -1;
    close_tok(self);
    const char *cpath = PyBytes_AS_STRING(fs);
    gm_error err;
    gm_status st;
    gm_tokenizer *tok = NULL;
    Py_BEGIN_ALLOW_THREADS
    st = gm_tokenizer_open(cpath, &tok, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(fs);
    if (st != GM_OK) {
        gmpy_raise(&err);
        return -1;
    }
    self->tok = tok;
    Py_INCREF(path);
    Py_XSETREF(self->path, path);
    return 0;
}

static void Tokenizer_dealloc(GmTokenizerObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    close_tok(self);
    Py_CLEAR(self->path);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *Tokenizer_close(GmTokenizerObject *self, PyObject *unused) {
    if (self->users) return gmpy_state_error("cannot close the tokenizer while another thread is using it");
    close_tok(self);
    Py_RETURN_NONE;
}

static PyObject *Tokenizer_enter(GmTokenizerObject *self, PyObject *unused) {
    return get_tok(self) ? Py_NewRef((PyObject *)self) : NULL;
}

static PyObject *Tokenizer_exit(GmTokenizerObject *self, PyObject *args) {
    PyObject *r = Tokenizer_close(self, NULL);
    Py_XDECREF(r);
    return r ? Py_NewRef(Py_False) : NULL;
}

PyDoc_STRVAR(encode_doc,
"encode(text, add_bos=True, special=False) -> list[int]\n\n"
"Token ids of `text` (str or UTF-8 bytes). special=True parses control\n"
"tokens written in the text ('<start_of_turn>'). Invalid UTF-8 raises\n"
"ArgumentError.");

static PyObject *Tokenizer_encode(GmTokenizerObject *self, PyObject *args, PyObject *kwds) {
    PyObject *text, *bos = NULL, *special = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:encode", GMPY_KWLIST("text", "add_bos", "special"), &text,
                                     &bos, &special))
        return NULL;
    int b = gmpy_flag(bos, 1, "add_bos"), sp = b < 0 ? -1 : gmpy_flag(special, 0, "special");
    const gm_tokenizer *tok = sp < 0 ? NULL : get_tok(self);
    return tok ? gmpy_encode(tok, &self->users, text, b, sp) : NULL;
}

PyDoc_STRVAR(decode_doc,
"decode(ids, skip_special=False) -> str\n\n"
"Text of token ids, as the Hugging Face decoder writes it.");

static PyObject *Tokenizer_decode(GmTokenizerObject *self, PyObject *args, PyObject *kwds) {
    PyObject *ids, *skip = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:decode", GMPY_KWLIST("ids", "skip_special"), &ids, &skip))
        return NULL;
    int sk = gmpy_flag(skip, 0, "skip_special");
    const gm_tokenizer *tok = sk < 0 ? NULL : get_tok(self);
    return tok ? gmpy_decode(tok, &self->users, ids, sk) : NULL;
}

static PyObject *Tokenizer_decode_bytes(GmTokenizerObject *self, PyObject *args, PyObject *kwds) {
    PyObject *ids, *skip = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:decode_bytes", GMPY_KWLIST("ids", "skip_special"), &ids,
                                     &skip))
        return NULL;
    int sk = gmpy_flag(skip, 0, "skip_special");
    const gm_tokenizer *tok = sk < 0 ? NULL : get_tok(self);
    return tok ? gmpy_decode_bytes(tok, ids, sk) : NULL;
}

static PyObject *Tokenizer_token_bytes(GmTokenizerObject *self, PyObject *id) {
    const gm_tokenizer *tok = get_tok(self);
    return tok ? gmpy_token_bytes(tok, id) : NULL;
}

static PyObject *Tokenizer_is_special(GmTokenizerObject *self, PyObject *id) {
    const gm_tokenizer *tok = get_tok(self);
    return tok ? gmpy_token_is_special(tok, id) : NULL;
}

static PyObject *Tokenizer_token_id(GmTokenizerObject *self, PyObject *text) {
    const gm_tokenizer *tok = get_tok(self);
    return tok ? gmpy_token_id(tok, text) : NULL;
}

static PyObject *int_attr(GmTokenizerObject *self, int32_t (*fn)(const gm_tokenizer *)) {
    const gm_tokenizer *tok = get_tok(self);
    return tok ? PyLong_FromLong(fn(tok)) : NULL;
}

static PyObject *Tokenizer_vocab_size(GmTokenizerObject *self, void *c) {
    return int_attr(self, gm_tokenizer_vocab_size);
}
static PyObject *Tokenizer_bos_id(GmTokenizerObject *self, void *c) { return int_attr(self, gm_tokenizer_bos_id); }
static PyObject *Tokenizer_eos_id(GmTokenizerObject *self, void *c) { return int_attr(self, gm_tokenizer_eos_id); }
static PyObject *Tokenizer_closed(GmTokenizerObject *self, void *c) { return PyBool_FromLong(!self->tok); }

static PyObject *Tokenizer_repr(GmTokenizerObject *self) {
    return PyUnicode_FromFormat("<gemma3n.Tokenizer %R%s>", self->path ? self->path : Py_None,
                                self->tok ? "" : " closed");
}

#define KW_METHOD(name, fn, doc) {name, (PyCFunction)(void (*)(void))fn, METH_VARARGS | METH_KEYWORDS, doc}

static PyMethodDef Tokenizer_methods[] = {
    KW_METHOD("encode", Tokenizer_encode, encode_doc),
    KW_METHOD("decode", Tokenizer_decode, decode_doc),
    KW_METHOD("decode_bytes", Tokenizer_decode_bytes,
              "decode_bytes(ids, skip_special=False) -> bytes\n\nRaw bytes of the tokens, concatenated."),
    {"token_bytes", (PyCFunction)Tokenizer_token_bytes, METH_O, "token_bytes(id) -> bytes"},
    {"is_special", (PyCFunction)Tokenizer_is_special, METH_O, "is_special(id) -> bool"},
    {"token_id", (PyCFunction)Tokenizer_token_id, METH_O,
     "token_id(token) -> int | None\n\nId of a token written as in the vocabulary."},
    {"close", (PyCFunction)Tokenizer_close, METH_NOARGS, "close()\n\nFrees the tokenizer. Idempotent."},
    {"__enter__", (PyCFunction)Tokenizer_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Tokenizer_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Tokenizer_getset[] = {
    {"vocab_size", (getter)Tokenizer_vocab_size, NULL, "number of ids", NULL},
    {"bos_id", (getter)Tokenizer_bos_id, NULL, "<bos> id (-1 if none)", NULL},
    {"eos_id", (getter)Tokenizer_eos_id, NULL, "<eos> id (-1 if none)", NULL},
    {"closed", (getter)Tokenizer_closed, NULL, "True after close()", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Tokenizer_doc,
"Tokenizer(path)\n\n"
"A Hugging Face tokenizer.json (Gemma's BPE with byte fallback), without\n"
"model weights. Thread-safe. Errors: FileError, ModelFormatError.");

static PyType_Slot Tokenizer_slots[] = {
    GMPY_DOC_SLOT(Tokenizer_doc),
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, Tokenizer_init},
    {Py_tp_dealloc, Tokenizer_dealloc},
    {Py_tp_repr, Tokenizer_repr},
    {Py_tp_methods, Tokenizer_methods},
    {Py_tp_getset, Tokenizer_getset},
    {0, NULL},
};

PyType_Spec gmpy_tokenizer_spec = {
    "gemma3n.Tokenizer", sizeof(GmTokenizerObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    Tokenizer_slots,
};
