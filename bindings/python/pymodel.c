/*
 * pymodel.c - Model: an open checkpoint (weights + config + tokenizer),
 * shared by any number of sessions and threads.
 *
 * The C type is gemma3n._gemma3n.Model; the package subclasses it in
 * python/gemma3n/model.py to add the llama-cpp-python-shaped helpers
 * (create_completion, generate, loglikelihood, ...).
 *
 * Model(path, **options) takes every option of the shared table: 'model'
 * options (n_threads) apply to the open, the others become the defaults of
 * the model's sessions and generations.
 */
#include "gmpy.h"

/* The open core model, or NULL with StateError. */
static gm_model *get_model(GmModelObject *self) {
    if (!self->model) gmpy_state_error("the model is closed");
    return self->model;
}

/* The model's tokenizer, or NULL with the no-tokenizer StateError. */
static const gm_tokenizer *get_tokenizer(GmModelObject *self) {
    gm_model *m = get_model(self);
    if (!m) return NULL;
    const gm_tokenizer *tok = gm_model_tokenizer(m);
    if (!tok) gmpy_no_tokenizer("this model");
    return tok;
}

static void close_model(GmModelObject *self) {
    gm_model_free(self->model); /* sessions still alive keep their own reference */
    self->model = NULL;
}

/* ---- construction ---- */

static int open_model(GmModelObject *self, PyObject *path) {
    PyObject *fs = NULL;
    if (!PyUnicode_FSConverter(path, &fs)) return -1;
    const char *cpath = PyBytes_AS_STRING(fs);
    gm_model *m = NULL;
    gm_error err;
    gm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = gm_model_open(cpath, &self->defaults.model, &m, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(fs);
    if (st != GM_OK) {
        gmpy_raise(&err);
        return -1;
    }
    self->model = m;
    return 0;
}

static int Model_init(GmModelObject *self, PyObject *args, PyObject *kwds) {
    PyObject *kw = kwds ? PyDict_Copy(kwds) : PyDict_New();
    PyObject *path = NULL;
    int rc = -1;
    if (!kw) return -1;
    PyObject *kpath = gmpy_kw_take(kw, "path");
    if (PyTuple_GET_SIZE(args) == 1 && !kpath) {
        path = PyTuple_GET_ITEM(args, 0);
        Py_INCREF(path);
    } else if (PyTuple_GET_SIZE(args) == 0 && kpath) {
        path = kpath;
        kpath = NULL;
    } else {
        PyErr_SetString(PyExc_TypeError, "Model() takes the model directory `path` and keyword options");
        goto finally;
    }
    if (self->users) {
        gmpy_state_error("cannot re-open a model that another thread is using");
        goto finally;
    }
    close_model(self);
    gm_bind_params_init(&self->defaults);
    if (gmpy_apply_options(&self->defaults, kw, GMPY_ALL_GROUPS, "Model()", NULL) < 0) goto finally;
    if (open_model(self, path) < 0) goto finally;
    Py_INCREF(path);
    Py_XSETREF(self->path, path);
    rc = 0;
finally:
    Py_XDECREF(kpath);
    Py_XDECREF(path);
    Py_DECREF(kw);
    return rc;
}

static void Model_dealloc(GmModelObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    close_model(self);
    Py_CLEAR(self->path);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ---- lifetime ---- */

PyDoc_STRVAR(close_doc,
"close()\n\n"
"Releases the model. Sessions still open keep the weights alive until they\n"
"are closed; Model calls afterwards raise StateError. Idempotent.");

static PyObject *Model_close(GmModelObject *self, PyObject *unused) {
    if (self->users) return gmpy_state_error("cannot close the model while another thread is using it");
    close_model(self);
    Py_RETURN_NONE;
}

static PyObject *Model_enter(GmModelObject *self, PyObject *unused) {
    if (!get_model(self)) return NULL;
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *Model_exit(GmModelObject *self, PyObject *args) {
    PyObject *r = PyObject_CallMethod((PyObject *)self, "close", NULL);
    Py_XDECREF(r);
    return r ? Py_NewRef(Py_False) : NULL;
}

/* ---- text ---- */

PyDoc_STRVAR(tokenize_doc,
"tokenize(text, add_bos=True, special=False) -> list[int]\n\n"
"Token ids of `text` (str, or UTF-8 bytes as llama-cpp-python takes).\n"
"special=True turns '<start_of_turn>' etc. into their control tokens.\n"
"Invalid UTF-8 raises ArgumentError; a model without tokenizer.json StateError.");

static PyObject *Model_tokenize(GmModelObject *self, PyObject *args, PyObject *kwds) {
    PyObject *text, *bos = NULL, *special = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:tokenize", GMPY_KWLIST("text", "add_bos", "special"),
                                     &text, &bos, &special))
        return NULL;
    int b = gmpy_flag(bos, 1, "add_bos"), sp = b < 0 ? -1 : gmpy_flag(special, 0, "special");
    if (sp < 0) return NULL;
    const gm_tokenizer *tok = get_tokenizer(self);
    return tok ? gmpy_encode(tok, &self->users, text, b, sp) : NULL;
}

PyDoc_STRVAR(detokenize_doc,
"detokenize(ids, skip_special=False) -> str\n\n"
"The text of token ids as the Hugging Face decoder writes it (byte runs\n"
"that are not UTF-8 become U+FFFD). See detokenize_bytes for raw bytes.");

static PyObject *Model_detokenize(GmModelObject *self, PyObject *args, PyObject *kwds) {
    PyObject *ids, *skip = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:detokenize", GMPY_KWLIST("ids", "skip_special"), &ids,
                                     &skip))
        return NULL;
    int sk = gmpy_flag(skip, 0, "skip_special");
    const gm_tokenizer *tok = sk < 0 ? NULL : get_tokenizer(self);
    return tok ? gmpy_decode(tok, &self->users, ids, sk) : NULL;
}

PyDoc_STRVAR(detokenize_bytes_doc,
"detokenize_bytes(ids, skip_special=False) -> bytes\n\n"
"The raw bytes of token ids, concatenated (a multi-byte character may be\n"
"cut at either end: llama-cpp-python's Llama.detokenize).");

static PyObject *Model_detokenize_bytes(GmModelObject *self, PyObject *args, PyObject *kwds) {
    PyObject *ids, *skip = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:detokenize_bytes", GMPY_KWLIST("ids", "skip_special"),
                                     &ids, &skip))
        return NULL;
    int sk = gmpy_flag(skip, 0, "skip_special");
    const gm_tokenizer *tok = sk < 0 ? NULL : get_tokenizer(self);
    return tok ? gmpy_decode_bytes(tok, ids, sk) : NULL;
}

static PyObject *Model_token_bytes(GmModelObject *self, PyObject *id) {
    const gm_tokenizer *tok = get_tokenizer(self);
    return tok ? gmpy_token_bytes(tok, id) : NULL;
}

static PyObject *Model_token_is_special(GmModelObject *self, PyObject *id) {
    const gm_tokenizer *tok = get_tokenizer(self);
    return tok ? gmpy_token_is_special(tok, id) : NULL;
}

static PyObject *Model_token_id(GmModelObject *self, PyObject *text) {
    const gm_tokenizer *tok = get_tokenizer(self);
    return tok ? gmpy_token_id(tok, text) : NULL;
}

/* ---- information ---- */

static PyObject *info_dict(const gm_model_info *i) {
    return Py_BuildValue(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:d,s:L,s:L,s:s}",
        "vocab_size", i->vocab_size, "hidden_size", i->hidden_size, "num_layers", i->num_layers,
        "num_heads", i->num_heads, "num_kv_heads", i->num_kv_heads, "head_dim", i->head_dim,
        "num_kv_shared_layers", i->num_kv_shared_layers, "sliding_window", i->sliding_window,
        "hidden_size_per_layer_input", i->hidden_size_per_layer_input, "altup_num_inputs",
        i->altup_num_inputs, "laurel_rank", i->laurel_rank, "bos_id", i->bos_id, "eos_id", i->eos_id,
        "end_of_turn_id", i->end_of_turn_id, "max_position_embeddings", i->max_position_embeddings,
        "final_logit_softcap", (double)i->final_logit_softcap, "n_params_text",
        (long long)i->n_params_text, "n_params_file", (long long)i->n_params_file, "weight_dtype",
        i->weight_dtype ? i->weight_dtype : "");
}

static int get_info(GmModelObject *self, gm_model_info *info) {
    gm_model *m = get_model(self);
    if (!m) return -1;
    gm_model_get_info(m, info);
    return 0;
}

static PyObject *Model_info(GmModelObject *self, void *closure) {
    gm_model_info info;
    return get_info(self, &info) < 0 ? NULL : info_dict(&info);
}

static PyObject *Model_n_vocab(GmModelObject *self, PyObject *unused) {
    gm_model_info info;
    return get_info(self, &info) < 0 ? NULL : PyLong_FromLong(info.vocab_size);
}

static PyObject *Model_token_bos(GmModelObject *self, PyObject *unused) {
    gm_model_info info;
    return get_info(self, &info) < 0 ? NULL : PyLong_FromLong(info.bos_id);
}

static PyObject *Model_token_eos(GmModelObject *self, PyObject *unused) {
    gm_model_info info;
    return get_info(self, &info) < 0 ? NULL : PyLong_FromLong(info.eos_id);
}

static PyObject *Model_describe(GmModelObject *self, PyObject *unused) {
    gm_model *m = get_model(self);
    size_t cap = 4096, len = 0;
    while (m) {
        char *buf = PyMem_Malloc(cap + 1);
        if (!buf) return PyErr_NoMemory();
        gm_error err;
        gm_status st = gm_model_describe(m, buf, cap + 1, &len, &err);
        PyObject *r = st == GM_OK && len <= cap ? PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace")
                                                : NULL;
        PyMem_Free(buf);
        if (st != GM_OK && len <= cap) return gmpy_raise(&err);
        if (len <= cap) return r;
        cap = len;
    }
    return NULL;
}

static PyObject *Model_closed(GmModelObject *self, void *closure) { return PyBool_FromLong(!self->model); }

static PyObject *Model_has_tokenizer(GmModelObject *self, void *closure) {
    gm_model *m = get_model(self);
    return m ? PyBool_FromLong(gm_model_tokenizer(m) != NULL) : NULL;
}

static PyObject *Model_path(GmModelObject *self, void *closure) {
    return Py_NewRef(self->path ? self->path : Py_None);
}

static PyObject *Model_repr(GmModelObject *self) {
    PyObject *path = self->path ? self->path : Py_None;
    return PyUnicode_FromFormat("<gemma3n.Model %R%s>", path, self->model ? "" : " closed");
}

/* ---- sessions ---- */

PyDoc_STRVAR(session_doc,
"session(**options) -> Session\n\n"
"A new conversation state (KV cache, sampler, history) on this model.\n"
"Options: n_ctx, kv_type (\"f32\" default, or \"f16\": half the KV memory),\n"
"logits_all and every sampler/generation option (see gemma3n.options());\n"
"unset ones come from the Model() options. A bad value raises\n"
"ArgumentError (a ValueError).");

static PyObject *Model_session(GmModelObject *self, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "session() takes keyword options only");
        return NULL;
    }
    return get_model(self) ? gmpy_session_new(self, kwds) : NULL;
}

/* ---- MatFormer submodels ---- */

/* A list of ints (layer indices or widths) into out[cap]; -1 with an exception set on error. */
static int int_list(PyObject *seq, const char *what, int32_t *out, int32_t *n) {
    PyObject *fast = PySequence_Fast(seq, "");
    if (!fast) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of ints", what);
        return -1;
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    if (len > GM_MAX_SUBMODEL_LAYERS) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s has %zd entries (at most %d)", what, len, GM_MAX_SUBMODEL_LAYERS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if ((v == -1 && PyErr_Occurred()) || v < 0 || v > INT32_MAX) {
            Py_DECREF(fast);
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s[%zd] must be a non-negative int", what, i);
            return -1;
        }
        out[i] = (int32_t)v;
    }
    *n = (int32_t)len;
    Py_DECREF(fast);
    return 0;
}

/* str (name, alias, "full", .json path) or a mapping {layers_to_skip, ffn_hidden_dims} -> spec. */
static int parse_spec(PyObject *arg, gm_submodel_spec *spec) {
    memset(spec, 0, sizeof *spec);
    if (PyUnicode_Check(arg)) {
        const char *name = PyUnicode_AsUTF8(arg);
        gm_error err;
        if (!name) return -1;
        if (gm_submodel_resolve(name, spec, &err) != GM_OK) {
            gmpy_raise(&err);
            return -1;
        }
        return 0;
    }
    if (!PyMapping_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "submodel must be a name/path (str) or a dict with layers_to_skip / ffn_hidden_dims");
        return -1;
    }
    PyObject *skip = PyMapping_GetItemString(arg, "layers_to_skip");
    if (!skip) PyErr_Clear();
    PyObject *ffn = PyMapping_GetItemString(arg, "ffn_hidden_dims");
    if (!ffn) PyErr_Clear();
    int rc = 0;
    if (skip) rc = int_list(skip, "layers_to_skip", spec->layers_to_skip, &spec->n_layers_to_skip);
    if (rc == 0 && ffn) rc = int_list(ffn, "ffn_hidden_dims", spec->ffn_hidden_dims, &spec->n_ffn_hidden_dims);
    Py_XDECREF(skip);
    Py_XDECREF(ffn);
    return rc;
}

PyDoc_STRVAR(select_submodel_doc,
"select_submodel(spec) -> None\n\n"
"Chooses the MatFormer submodel that sessions created from now on use,\n"
"without reloading: a table name or alias ('E2B', 'E4B', 'Config for E2.49B\n"
"(block-level)'), 'full', a .json path, or a dict {'layers_to_skip': [...],\n"
"'ffn_hidden_dims': [...]} (one width per original or per kept layer).\n"
"Existing sessions keep theirs. Invalid specs raise ArgumentError with the reason.");

static PyObject *Model_select_submodel(GmModelObject *self, PyObject *arg) {
    gm_model *m = get_model(self);
    gm_submodel_spec spec;
    if (!m || parse_spec(arg, &spec) != 0) return NULL;
    gm_error err;
    if (gm_model_select_submodel(m, &spec, &err) != GM_OK) return gmpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *spec_to_dict(const gm_submodel_spec *spec) {
    PyObject *skip = PyList_New(spec->n_layers_to_skip), *ffn = PyList_New(spec->n_ffn_hidden_dims);
    for (int i = 0; skip && i < spec->n_layers_to_skip; i++) PyList_SET_ITEM(skip, i, PyLong_FromLong(spec->layers_to_skip[i]));
    for (int i = 0; ffn && i < spec->n_ffn_hidden_dims; i++) PyList_SET_ITEM(ffn, i, PyLong_FromLong(spec->ffn_hidden_dims[i]));
    PyObject *d = skip && ffn ? Py_BuildValue("{sOsO}", "layers_to_skip", skip, "ffn_hidden_dims", ffn) : NULL;
    Py_XDECREF(skip);
    Py_XDECREF(ffn);
    return d;
}

static PyObject *Model_submodel(GmModelObject *self, void *closure) {
    gm_model *m = get_model(self);
    if (!m) return NULL;
    gm_submodel_spec spec;
    gm_model_get_submodel(m, &spec);
    return spec_to_dict(&spec);
}

PyDoc_STRVAR(submodels_doc,
"submodels() -> list[dict]\n\n"
"Google's official MatFormer slicing table: name, alias, layers, table_params_b,\n"
"mmlu, spec, and - computed from this model's actual shapes - valid and\n"
"effective_params (the text decoder without the two embedding tables).");

static PyObject *Model_submodels(GmModelObject *self, PyObject *unused) {
    gm_model *m = get_model(self);
    if (!m) return NULL;
    size_t n = gm_submodel_count();
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        gm_submodel_entry e;
        gm_submodel_spec spec;
        int64_t params = 0;
        gm_submodel_get(i, &e, &spec, NULL);
        bool valid = gm_model_check_submodel(m, &spec, &params, NULL) == GM_OK;
        PyObject *sd = spec_to_dict(&spec);
        PyObject *row = sd ? Py_BuildValue("{sssssisdsssOsOsN}", "name", e.name, "alias", e.alias, "layers", (int)e.num_layers,
                                           "table_params_b", e.effective_params_b, "mmlu", e.mmlu, "spec", sd,
                                           "valid", valid ? Py_True : Py_False, "effective_params",
                                           valid ? PyLong_FromLongLong(params) : Py_NewRef(Py_None))
                           : NULL;
        Py_XDECREF(sd);
        if (!row) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, row);
    }
    return list;
}

#define KW_METHOD(name, fn, doc) {name, (PyCFunction)(void (*)(void))fn, METH_VARARGS | METH_KEYWORDS, doc}

static PyMethodDef Model_methods[] = {
    KW_METHOD("tokenize", Model_tokenize, tokenize_doc),
    KW_METHOD("detokenize", Model_detokenize, detokenize_doc),
    KW_METHOD("detokenize_bytes", Model_detokenize_bytes, detokenize_bytes_doc),
    KW_METHOD("session", Model_session, session_doc),
    {"token_bytes", (PyCFunction)Model_token_bytes, METH_O,
     "token_bytes(id) -> bytes\n\nThe bytes one token stands for (' the', b'\\n', ...)."},
    {"token_is_special", (PyCFunction)Model_token_is_special, METH_O,
     "token_is_special(id) -> bool\n\nTrue for control tokens (<bos>, <end_of_turn>, ...)."},
    {"token_id", (PyCFunction)Model_token_id, METH_O,
     "token_id(token) -> int | None\n\nId of a token written as in the vocabulary ('<end_of_turn>')."},
    {"n_vocab", (PyCFunction)Model_n_vocab, METH_NOARGS, "n_vocab() -> int\n\nVocabulary size."},
    {"token_bos", (PyCFunction)Model_token_bos, METH_NOARGS, "token_bos() -> int\n\n<bos> id (-1 if unknown)."},
    {"token_eos", (PyCFunction)Model_token_eos, METH_NOARGS, "token_eos() -> int\n\n<eos> id (-1 if unknown)."},
    {"describe", (PyCFunction)Model_describe, METH_NOARGS,
     "describe() -> str\n\nConfig, parameter counts and tensor dtypes, human readable."},
    {"select_submodel", (PyCFunction)Model_select_submodel, METH_O, select_submodel_doc},
    {"submodels", (PyCFunction)Model_submodels, METH_NOARGS, submodels_doc},
    {"close", (PyCFunction)Model_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)Model_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Model_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Model_getset[] = {
    {"info", (getter)Model_info, NULL, "dict: vocab_size, hidden_size, num_layers, bos_id, eos_id, ...", NULL},
    {"closed", (getter)Model_closed, NULL, "True after close()", NULL},
    {"has_tokenizer", (getter)Model_has_tokenizer, NULL, "True when the model has a tokenizer.json", NULL},
    {"path", (getter)Model_path, NULL, "the path given to Model()", NULL},
    {"submodel", (getter)Model_submodel, NULL, "the MatFormer submodel new sessions use (dict; empty lists = full model)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Model_doc,
"Model(path, *, n_threads=None, n_ctx=None, **options)\n\n"
"Opens a Gemma 3n checkpoint directory (config.json, *.safetensors,\n"
"optional tokenizer.json). The weights are memory-mapped; the model is\n"
"immutable and may be shared by sessions in several threads. Keyword\n"
"options (gemma3n.options()) become the defaults of the model's sessions\n"
"and generations. Errors: FileError, ModelFormatError, ArgumentError.");

static PyType_Slot Model_slots[] = {
    GMPY_DOC_SLOT(Model_doc),
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, Model_init},
    {Py_tp_dealloc, Model_dealloc},
    {Py_tp_repr, Model_repr},
    {Py_tp_methods, Model_methods},
    {Py_tp_getset, Model_getset},
    {0, NULL},
};

PyType_Spec gmpy_model_spec = {
    "gemma3n._gemma3n.Model", sizeof(GmModelObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    Model_slots,
};
