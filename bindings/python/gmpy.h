/*
 * gmpy.h - what the files of the CPython extension gemma3n._gemma3n share:
 * the object structs (one .c per type, as python-zstandard's c-ext/), the
 * exception and type objects created by module.c, and the conversion
 * helpers of pyconv.c.
 *
 *   module.c       PyInit__gemma3n, exceptions, gmpy_raise, chat_format, options()
 *   pyconv.c       token lists <-> int32 buffers, keyword options -> gm_bind_params
 *                  (through the shared table of bindings/common/gm_bind.h)
 *   pytext.c       encode/decode shared by Model and Tokenizer
 *   pymodel.c      Model
 *   pysession.c    Session: state, eval (chunked, interruptible), logits, scores
 *   pyscore.c      Session.continuation_logprobs (log-likelihood scoring)
 *   pyiter.c       Generation: the iterator returned by Session.generate
 *   pytokenizer.c  Tokenizer (a standalone tokenizer.json)
 *
 * Rules every file follows:
 *  - every call into the core runs with the GIL released
 *    (Py_BEGIN_ALLOW_THREADS) and touches no Python object meanwhile;
 *  - a Session is single-threaded in the core: its busy flag
 *    (gm_bind_try_enter) turns a second thread's call into StateError;
 *  - Model and Tokenizer are shared: `users` counts calls running with the
 *    GIL released so close() cannot free what another thread reads;
 *  - a Session holds a strong reference to its Model and a Generation to
 *    its Session, and the core reference-counts models, so Python may free
 *    them in any order.
 */
#ifndef GMPY_H
#define GMPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL gmpy_ARRAY_API
#ifndef GMPY_MODULE_C
#  define NO_IMPORT_ARRAY
#endif
/* NumPy's inline helpers cast away const (-Wcast-qual); Debian also exposes its
 * headers under the Python include dir, so -isystem alone does not hide them. */
#if defined(__GNUC__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wcast-qual"
#endif
#include <numpy/arrayobject.h>
#if defined(__GNUC__)
#  pragma GCC diagnostic pop
#endif

#include "gemma3n.h"
#include "gm_bind.h"

#include <stdatomic.h>
#include <stdint.h>

/*
 * Tokens per gm_session_eval call when a long prompt is evaluated in
 * chunks (signals are checked between chunks). A multiple of the core's
 * batch (GM_MAX_BATCH = 64 in core/src/session.h), so chunking does not
 * move the batch boundaries and the logits equal those of one big call.
 */
#define GMPY_EVAL_CHUNK 128

/* ---- objects ---- */

typedef struct GmModelObject {
    PyObject_HEAD
    gm_model *model;          /* NULL once closed */
    int users;                /* calls running without the GIL (changed with the GIL held) */
    gm_bind_params defaults;  /* options given to Model(): defaults of sessions and generations */
    PyObject *path;           /* str, as given */
} GmModelObject;

typedef struct GmSessionObject {
    PyObject_HEAD
    PyObject *model;          /* the Model (strong reference) */
    gm_session *session;      /* NULL once closed */
    atomic_flag busy;         /* held while a call runs (gm_bind_try_enter) */
    volatile int cancel;      /* set by cancel(); the core polls it */
    gm_bind_params params;    /* this session's sampler and generation settings */
    int sampler_dirty;        /* the core's sampler holds one generate() call's overrides */
    unsigned long epoch;      /* bumped by each generate(): older iterators are stale */
    int32_t n_vocab;
    int logits_all;
    float *scores;            /* [scores_rows, n_vocab]: logits of the last eval() when logits_all */
    size_t scores_rows, scores_cap;
} GmSessionObject;

typedef struct GmGenerationObject {
    PyObject_HEAD
    GmSessionObject *session; /* strong reference */
    unsigned long epoch;
    int yield_ids;            /* yield token ids instead of text pieces */
    int done;
    gm_finish finish;
    const char *finish_why;   /* "stop", "length", "cancelled", "error" or NULL */
    PyObject *tokens;         /* list: generated ids added to the context */
    int32_t stop_token;       /* the end token that stopped generation, or -1 */
    Py_ssize_t n_prompt;      /* tokens generate() evaluated before generating */
} GmGenerationObject;

typedef struct GmTokenizerObject {
    PyObject_HEAD
    gm_tokenizer *tok;        /* NULL once closed */
    int users;
    PyObject *path;
} GmTokenizerObject;

/* ---- module.c: types and exceptions ---- */

extern PyTypeObject *gmpy_ModelType, *gmpy_SessionType, *gmpy_GenerationType, *gmpy_TokenizerType;

extern PyObject *gmpy_Error, *gmpy_ModelFormatError, *gmpy_FileError, *gmpy_ArgumentError,
    *gmpy_ContextOverflowError, *gmpy_StateError, *gmpy_OutOfMemoryError, *gmpy_CancelledError,
    *gmpy_InternalError;

/* Raises the exception of err's family with err's message; returns NULL. */
PyObject *gmpy_raise(const gm_error *err);
#if defined(__GNUC__)
#  define GMPY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define GMPY_PRINTF(a, b)
#endif

/* Raises StateError with a formatted message; returns NULL. */
PyObject *gmpy_state_error(const char *fmt, ...) GMPY_PRINTF(1, 2);
/* Raises the "no tokenizer" StateError (status "no_tokenizer") of `what`; returns NULL. */
PyObject *gmpy_no_tokenizer(const char *what);

/* Type specs, one per type file. */
extern PyType_Spec gmpy_model_spec, gmpy_session_spec, gmpy_generation_spec, gmpy_tokenizer_spec;

/* ---- pyconv.c: conversions ---- */

/* An int32 token buffer owned by the binding (PyMem), usable without the GIL. */
typedef struct gmpy_ids {
    int32_t *v;
    size_t n;
} gmpy_ids;

/*
 * Converts a sequence of ints or a 1-D integer NumPy array. TypeError /
 * ValueError name `argname` and the position. 0 on success, -1 with an
 * exception. Release with gmpy_ids_free.
 */
int gmpy_ids_from_object(PyObject *obj, const char *argname, gmpy_ids *out);
void gmpy_ids_free(gmpy_ids *ids);
PyObject *gmpy_ids_to_list(const int32_t *ids, size_t n);

/* Groups an option may belong to, as bit masks of gm_opt_group values. */
#define GMPY_GROUP(g) (1u << (g))
#define GMPY_ALL_GROUPS                                                                        \
    (GMPY_GROUP(GM_OPT_MODEL) | GMPY_GROUP(GM_OPT_SESSION) | GMPY_GROUP(GM_OPT_SAMPLER) |      \
     GMPY_GROUP(GM_OPT_GENERATE))

/*
 * Applies every item of `kwargs` (a dict or NULL) to `p` through the shared
 * option table. Options outside `groups` and unknown names are TypeError
 * naming `func`; None keeps the current value. *touched (may be NULL) gets
 * the GMPY_GROUP bits of the options set. 0 or -1 with an exception.
 */
int gmpy_apply_options(gm_bind_params *p, PyObject *kwargs, unsigned groups, const char *func,
                       unsigned *touched);

/*
 * Removes `name` from the dict `kwargs` (may be NULL) and returns it as a
 * new reference, or NULL without an exception when absent.
 */
PyObject *gmpy_kw_take(PyObject *kwargs, const char *name);

/* Truth value of an optional keyword: `dflt` when obj is NULL or None; -1 on error. */
int gmpy_flag(PyObject *obj, int dflt, const char *name);

/* The UTF-8 bytes of a str or bytes-like object (a new reference to a bytes object). */
PyObject *gmpy_text_bytes(PyObject *text, const char *argname);

/* ---- pytext.c: tokenizer calls shared by Model and Tokenizer ---- */

/* Tokenizes a str or bytes into an owned id buffer; 0 or -1 with an exception. */
int gmpy_encode_ids(const gm_tokenizer *tok, int *users, PyObject *text, int add_bos, int special,
                    gmpy_ids *out);
PyObject *gmpy_encode(const gm_tokenizer *tok, int *users, PyObject *text, int add_bos, int special);
PyObject *gmpy_decode(const gm_tokenizer *tok, int *users, PyObject *ids, int skip_special);
PyObject *gmpy_decode_bytes(const gm_tokenizer *tok, PyObject *ids, int skip_special);
PyObject *gmpy_token_bytes(const gm_tokenizer *tok, PyObject *id);
PyObject *gmpy_token_id(const gm_tokenizer *tok, PyObject *text);
PyObject *gmpy_token_is_special(const gm_tokenizer *tok, PyObject *id);

/* ---- pysession.c / pyscore.c / pyiter.c ---- */

/* A new Session of `model` with the model's defaults overridden by kwargs. */
PyObject *gmpy_session_new(GmModelObject *model, PyObject *kwargs);

/* Busy guard around every session call: 0, or -1 with StateError (closed or busy). */
int gmpy_session_enter(GmSessionObject *s);
void gmpy_session_leave(GmSessionObject *s);

/*
 * Evaluates ids (session entered), in GMPY_EVAL_CHUNK pieces with the GIL
 * released, checking signals between pieces and collecting scores. 0 or -1
 * with an exception (tokens of finished chunks stay in the context).
 */
int gmpy_session_eval_ids(GmSessionObject *s, const int32_t *ids, size_t n);

PyObject *gmpy_session_continuation_logprobs(GmSessionObject *s, PyObject *tokens);

/* A Generation iterator over the session's current generation. */
PyObject *gmpy_generation_new(GmSessionObject *s, int yield_ids, Py_ssize_t n_prompt);

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) {
    Py_INCREF(o);
    return o;
}
#endif

/*
 * A keyword list for PyArg_ParseTupleAndKeywords, which takes char ** before
 * Python 3.13: the cast goes through uintptr_t so the literals stay const
 * under -Wwrite-strings -Wcast-qual. Likewise for the const doc of Py_tp_doc.
 */
#define GMPY_KWLIST(...) ((char **)(uintptr_t)(const char *const[]){__VA_ARGS__, NULL})
#define GMPY_DOC_SLOT(doc) {Py_tp_doc, (void *)(uintptr_t)(doc)}

/* Py_VISIT of the type, as heap types must from 3.9 on (bpo-40217). */
#if PY_VERSION_HEX >= 0x03090000
#  define GMPY_VISIT_TYPE(self) Py_VISIT(Py_TYPE(self))
#else
#  define GMPY_VISIT_TYPE(self) ((void)0)
#endif

#endif
