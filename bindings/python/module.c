/*
 * module.c - PyInit__gemma3n: the exception hierarchy, type registration,
 * gmpy_raise (gm_error -> exception, by the shared error families of
 * gm_bind.h) and the module-level functions chat_format() and options().
 *
 * Single-phase initialisation with the types and exceptions in static
 * globals (as python-zstandard): the module is imported once per process.
 */
#define GMPY_MODULE_C
#include "gmpy.h"

#include <stdarg.h>

PyMODINIT_FUNC PyInit__gemma3n(void);

PyTypeObject *gmpy_ModelType, *gmpy_SessionType, *gmpy_GenerationType, *gmpy_TokenizerType;

PyObject *gmpy_Error, *gmpy_ModelFormatError, *gmpy_FileError, *gmpy_ArgumentError,
    *gmpy_ContextOverflowError, *gmpy_StateError, *gmpy_OutOfMemoryError, *gmpy_CancelledError,
    *gmpy_InternalError;

/* ---- errors ---- */

static PyObject *family_class(gm_error_family f) {
    switch (f) {
    case GM_FAMILY_FORMAT: return gmpy_ModelFormatError;
    case GM_FAMILY_IO: return gmpy_FileError;
    case GM_FAMILY_ARGUMENT: return gmpy_ArgumentError;
    case GM_FAMILY_CONTEXT: return gmpy_ContextOverflowError;
    case GM_FAMILY_STATE: return gmpy_StateError;
    case GM_FAMILY_MEMORY: return gmpy_OutOfMemoryError;
    case GM_FAMILY_CANCELLED: return gmpy_CancelledError;
    default: return gmpy_InternalError;
    }
}

/* Raises cls(message) with the attribute status = gm_status_name(status). */
static PyObject *raise_with_status(PyObject *cls, gm_status status, const char *message) {
    PyObject *exc = PyObject_CallFunction(cls, "s", message);
    if (!exc) return NULL;
    PyObject *name = PyUnicode_FromString(gm_status_name(status));
    if (!name || PyObject_SetAttrString(exc, "status", name) < 0) {
        Py_XDECREF(name);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(name);
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *gmpy_raise(const gm_error *err) {
    const char *msg = err->message[0] ? err->message : gm_status_name(err->status);
    return raise_with_status(family_class(gm_bind_error_family(err->status)), err->status, msg);
}

PyObject *gmpy_state_error(const char *fmt, ...) {
    char msg[GM_ERROR_MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return raise_with_status(gmpy_StateError, GM_ERR_STATE, msg);
}

PyObject *gmpy_no_tokenizer(const char *what) {
    gm_error err = {.status = GM_ERR_NO_TOKENIZER};
    snprintf(err.message, sizeof err.message,
             "%s has no tokenizer (its directory has no tokenizer.json): use token ids", what);
    return gmpy_raise(&err);
}

/* ---- chat_format ---- */

/* messages[i][key] as UTF-8 without NUL (borrowed from the str); NULL with an exception. */
static const char *message_field(PyObject *msg, Py_ssize_t i, const char *key) {
    PyObject *v = PyMapping_Check(msg) ? PyMapping_GetItemString(msg, key) : NULL;
    if (!v) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "messages[%zd] must be a mapping with a '%s' string", i, key);
        return NULL;
    }
    Py_DECREF(v); /* the message keeps it alive */
    if (!PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "messages[%zd]['%s'] must be str, not %.80s", i, key,
                     Py_TYPE(v)->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(v, &len);
    if (s && (size_t)len != strlen(s)) {
        PyErr_Format(gmpy_ArgumentError, "messages[%zd]['%s'] contains a NUL character", i, key);
        return NULL;
    }
    return s;
}

static PyObject *format_messages(gm_chat_message *msgs, size_t n, int gen_prompt, int add_bos,
                                 size_t guess) {
    gm_error err;
    size_t len = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *buf = PyMem_Malloc(guess + 1);
        if (!buf) return PyErr_NoMemory();
        gm_status st = gm_chat_format(msgs, n, gen_prompt, add_bos, buf, guess + 1, &len, &err);
        if (st == GM_OK && len <= guess) {
            PyObject *r = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "strict");
            PyMem_Free(buf);
            return r;
        }
        PyMem_Free(buf);
        if (st != GM_OK && len <= guess) return gmpy_raise(&err);
        guess = len;
    }
    return gmpy_raise(&err);
}

PyDoc_STRVAR(chat_format_doc,
"chat_format(messages, add_generation_prompt=True, add_bos=True) -> str\n\n"
"Formats [{'role': ..., 'content': str}, ...] in the Gemma 3n turn format\n"
"(roles: system, user, assistant or model; a system message is merged into\n"
"the first user turn). Tokenize the result with special=True, add_bos=False.");

static PyObject *chat_format(PyObject *mod, PyObject *args, PyObject *kwds) {
    PyObject *messages;
    int gen_prompt = 1, add_bos = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|pp:chat_format",
                                     GMPY_KWLIST("messages", "add_generation_prompt", "add_bos"), &messages,
                                     &gen_prompt, &add_bos))
        return NULL;
    PyObject *seq = PySequence_Fast(messages, "messages must be a list of {'role', 'content'} mappings");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    gm_chat_message *msgs = PyMem_Calloc((size_t)n + 1, sizeof *msgs);
    PyObject *result = NULL;
    size_t guess = 64;
    if (!msgs) {
        PyErr_NoMemory();
        goto finally;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PySequence_Fast_GET_ITEM(seq, i);
        if (!(msgs[i].role = message_field(m, i, "role"))) goto finally;
        if (!(msgs[i].content = message_field(m, i, "content"))) goto finally;
        guess += strlen(msgs[i].content) + 64;
    }
    result = format_messages(msgs, (size_t)n, gen_prompt, add_bos, guess);
finally:
    PyMem_Free(msgs);
    Py_DECREF(seq);
    return result;
}

/* ---- options() ---- */

static const char *type_name(gm_opt_type t) {
    switch (t) {
    case GM_OPT_INT: return "int";
    case GM_OPT_FLOAT: return "float";
    case GM_OPT_BOOL: return "bool";
    case GM_OPT_SEED: return "seed";
    case GM_OPT_STOP: return "stop";
    case GM_OPT_BIAS: return "logit_bias";
    case GM_OPT_STRING: return "str";
    }
    return "other";
}

static const char *group_name(gm_opt_group g) {
    switch (g) {
    case GM_OPT_MODEL: return "model";
    case GM_OPT_SESSION: return "session";
    case GM_OPT_SAMPLER: return "sampler";
    case GM_OPT_GENERATE: return "generate";
    }
    return "other";
}

PyDoc_STRVAR(options_doc,
"options() -> list[dict]\n\n"
"The keyword options Model(), Model.session() and Session.generate() accept\n"
"(the table shared with the Lua binding): name, type, group, min, max, doc.\n"
"Group 'model' options go to Model() only; 'session' to Model() or\n"
"Model.session(); 'sampler' and 'generate' anywhere.");

static PyObject *options(PyObject *mod, PyObject *unused) {
    size_t n;
    const gm_bind_option *o = gm_bind_options(&n);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *d = Py_BuildValue("{s:s,s:s,s:s,s:d,s:d,s:s}", "name", o[i].name, "type",
                                    type_name(o[i].type), "group", group_name(o[i].group), "min",
                                    o[i].min, "max", o[i].max, "doc", o[i].doc);
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    return list;
}

static PyMethodDef module_methods[] = {
    {"chat_format", (PyCFunction)(void (*)(void))chat_format, METH_VARARGS | METH_KEYWORDS,
     chat_format_doc},
    {"options", options, METH_NOARGS, options_doc},
    {NULL, NULL, 0, NULL},
};

/* ---- initialisation ---- */

/* The exception hierarchy: every class derives from Error (a RuntimeError). */
static const struct {
    PyObject **slot;
    const char *name;
    PyObject **also; /* a second base (OSError, ValueError, MemoryError) or NULL */
    const char *doc;
} exceptions[] = {
    {&gmpy_ModelFormatError, "ModelFormatError", NULL,
     "A model or tokenizer file is malformed, or uses something unsupported."},
    {&gmpy_FileError, "FileError", &PyExc_OSError,
     "A file could not be opened, read or mapped (also an OSError)."},
    {&gmpy_ArgumentError, "ArgumentError", &PyExc_ValueError,
     "An invalid argument: bad token id, empty prompt, invalid UTF-8 (also a ValueError)."},
    {&gmpy_ContextOverflowError, "ContextOverflowError", NULL,
     "The session's context (n_ctx tokens) cannot hold the tokens."},
    {&gmpy_StateError, "StateError", NULL,
     "The object is closed, busy in another thread, or not in a state for the call\n"
     "(e.g. a text call on a model without tokenizer: status 'no_tokenizer')."},
    {&gmpy_OutOfMemoryError, "OutOfMemoryError", &PyExc_MemoryError,
     "An allocation failed (also a MemoryError)."},
    {&gmpy_CancelledError, "CancelledError", NULL, "Session.cancel() stopped the work."},
    {&gmpy_InternalError, "InternalError", NULL,
     "A broken invariant in the engine: a bug, please report it."},
};

/* Creates gemma3n.<name> with `bases` (stolen) and adds it to the module; NULL on error. */
static PyObject *new_exception(PyObject *mod, const char *name, const char *doc, PyObject *bases) {
    char full[64];
    snprintf(full, sizeof full, "gemma3n.%s", name);
    PyObject *cls = bases ? PyErr_NewExceptionWithDoc(full, doc, bases, NULL) : NULL;
    Py_XDECREF(bases);
    if (!cls) return NULL;
    Py_INCREF(cls); /* one reference for the global, one given to the module */
    if (PyModule_AddObject(mod, name, cls) < 0) {
        Py_DECREF(cls);
        Py_DECREF(cls);
        return NULL;
    }
    return cls;
}

static int add_exceptions(PyObject *m) {
    gmpy_Error = new_exception(m, "Error",
                               "Base of every gemma3n error. Attribute `status`: the core's status name.",
                               PyTuple_Pack(1, PyExc_RuntimeError));
    if (!gmpy_Error) return -1;
    for (size_t i = 0; i < sizeof exceptions / sizeof exceptions[0]; i++) {
        PyObject *bases = exceptions[i].also ? PyTuple_Pack(2, gmpy_Error, *exceptions[i].also)
                                             : PyTuple_Pack(1, gmpy_Error);
        *exceptions[i].slot = new_exception(m, exceptions[i].name, exceptions[i].doc, bases);
        if (!*exceptions[i].slot) return -1;
    }
    return 0;
}

static PyTypeObject *add_type(PyObject *m, const char *name, PyType_Spec *spec) {
    PyTypeObject *t = (PyTypeObject *)PyType_FromSpec(spec);
    if (!t) return NULL;
    Py_INCREF(t);
    if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
        Py_DECREF(t);
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "gemma3n._gemma3n",
    "C extension of gemma3n: Gemma 3n inference on the CPU. Use the `gemma3n` package.",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gemma3n(void) {
    import_array();
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (add_exceptions(m) < 0 ||
        !(gmpy_ModelType = add_type(m, "Model", &gmpy_model_spec)) ||
        !(gmpy_SessionType = add_type(m, "Session", &gmpy_session_spec)) ||
        !(gmpy_GenerationType = add_type(m, "Generation", &gmpy_generation_spec)) ||
        !(gmpy_TokenizerType = add_type(m, "Tokenizer", &gmpy_tokenizer_spec)) ||
        PyModule_AddStringConstant(m, "__version__", GEMMA3N_VERSION_STRING) < 0 ||
        PyModule_AddIntConstant(m, "MAX_STOP_STRINGS", GM_MAX_STOP_STRINGS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
