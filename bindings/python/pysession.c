/*
 * pysession.c - Session: one conversation on a Model (KV cache, sampler,
 * token history), used by one thread at a time.
 *
 * Every method enters the busy guard (gm_bind_try_enter), so a second
 * thread gets StateError instead of a data race, and releases the GIL
 * around the core call. Long prompts are evaluated in GMPY_EVAL_CHUNK
 * pieces with PyErr_CheckSignals() between them, so Ctrl-C stops a long
 * prefill; cancel() (from any thread) sets the core's cancel flag.
 */
#include "gmpy.h"

#define SESSION_GROUPS (GMPY_GROUP(GM_OPT_SESSION) | GMPY_GROUP(GM_OPT_SAMPLER) | GMPY_GROUP(GM_OPT_GENERATE))
#define CALL_GROUPS (GMPY_GROUP(GM_OPT_SAMPLER) | GMPY_GROUP(GM_OPT_GENERATE))

int gmpy_session_enter(GmSessionObject *s) {
    if (!s->session) {
        gmpy_state_error("the session is closed");
        return -1;
    }
    if (!gm_bind_try_enter(&s->busy)) {
        gmpy_state_error("the session is busy in another thread (use one Session per thread)");
        return -1;
    }
    return 0;
}

void gmpy_session_leave(GmSessionObject *s) { gm_bind_leave(&s->busy); }

/* ---- construction and lifetime ---- */

PyObject *gmpy_session_new(GmModelObject *model, PyObject *kwargs) {
    GmSessionObject *s = (GmSessionObject *)gmpy_SessionType->tp_alloc(gmpy_SessionType, 0);
    if (!s) return NULL;
    atomic_flag_clear(&s->busy);
    Py_INCREF(model);
    s->model = (PyObject *)model;
    gm_bind_params_copy(&s->params, &model->defaults);
    if (gmpy_apply_options(&s->params, kwargs, SESSION_GROUPS, "Model.session()", NULL) < 0) goto fail;
    gm_error err;
    gm_status st;
    model->users++;
    Py_BEGIN_ALLOW_THREADS
    st = gm_session_new(model->model, &s->params.session, &s->session, &err);
    Py_END_ALLOW_THREADS
    model->users--;
    if (st != GM_OK) {
        gmpy_raise(&err);
        goto fail;
    }
    gm_model_info info;
    gm_model_get_info(model->model, &info);
    s->n_vocab = info.vocab_size;
    s->logits_all = s->params.session.keep_all_logits != 0;
    gm_session_set_cancel_flag(s->session, &s->cancel);
    return (PyObject *)s;
fail:
    Py_DECREF(s);
    return NULL;
}

static void free_session(GmSessionObject *s) {
    gm_session_free(s->session); /* drops the core's model reference */
    s->session = NULL;
    PyMem_RawFree(s->scores);
    s->scores = NULL;
    s->scores_rows = s->scores_cap = 0;
}

static int Session_traverse(GmSessionObject *s, visitproc visit, void *arg) {
    GMPY_VISIT_TYPE(s);
    Py_VISIT(s->model);
    return 0;
}

static int Session_clear(GmSessionObject *s) {
    Py_CLEAR(s->model);
    return 0;
}

static void Session_dealloc(GmSessionObject *s) {
    PyTypeObject *tp = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    free_session(s);
    Py_CLEAR(s->model);
    tp->tp_free((PyObject *)s);
    Py_DECREF(tp);
}

static PyObject *Session_new(PyTypeObject *t, PyObject *a, PyObject *k) {
    PyErr_SetString(PyExc_TypeError, "Session objects are created by Model.session()");
    return NULL;
}

PyDoc_STRVAR(close_doc,
"close()\n\nFrees the KV cache and buffers. Idempotent; later calls raise StateError.");

static PyObject *Session_close(GmSessionObject *s, PyObject *unused) {
    if (!s->session) Py_RETURN_NONE;
    if (!gm_bind_try_enter(&s->busy))
        return gmpy_state_error("cannot close the session while another thread is using it");
    free_session(s);
    s->epoch++;
    gmpy_session_leave(s);
    Py_RETURN_NONE;
}

static PyObject *Session_enter_ctx(GmSessionObject *s, PyObject *unused) {
    if (!s->session) return gmpy_state_error("the session is closed");
    return Py_NewRef((PyObject *)s);
}

static PyObject *Session_exit_ctx(GmSessionObject *s, PyObject *args) {
    PyObject *r = Session_close(s, NULL);
    Py_XDECREF(r);
    return r ? Py_NewRef(Py_False) : NULL;
}

PyDoc_STRVAR(cancel_doc,
"cancel()\n\n"
"Asks the running eval() or generation of this session to stop (callable\n"
"from any thread): the call raises CancelledError. Tokens evaluated before\n"
"the stop stay in the context. A cancel with nothing running is ignored.");

static PyObject *Session_cancel(GmSessionObject *s, PyObject *unused) {
    s->cancel = 1;
    Py_RETURN_NONE;
}

/* ---- evaluation ---- */

/*
 * A chunked eval must fail before the first chunk on what one
 * gm_session_eval call would reject as a whole (ids outside the vocabulary,
 * overflow), so the context is unchanged on error; messages follow the core's.
 */
static int validate_chunked(GmSessionObject *s, const int32_t *ids, size_t n) {
    gm_error err = {.status = GM_ERR_ARGUMENT};
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->n_vocab) {
            snprintf(err.message, sizeof err.message,
                     "token id %d at position %zu is outside the vocabulary [0, %d)", (int)ids[i], i,
                     (int)s->n_vocab);
            gmpy_raise(&err);
            return -1;
        }
    size_t past = gm_session_n_past(s->session), ctx = gm_session_n_ctx(s->session);
    if (n > ctx - past) {
        err.status = GM_ERR_CONTEXT_OVERFLOW;
        snprintf(err.message, sizeof err.message,
                 "context overflow: %zu tokens in the context + %zu new > n_ctx %zu", past, n, ctx);
        gmpy_raise(&err);
        return -1;
    }
    return 0;
}

/* Appends the rows the last gm_session_eval kept to s->scores. */
static int collect_scores(GmSessionObject *s) {
    size_t rows = 0, V = (size_t)s->n_vocab;
    const float *src = gm_session_all_logits(s->session, &rows);
    if (!src || !rows) return 0;
    size_t need = (s->scores_rows + rows) * V;
    if (need > s->scores_cap) {
        size_t cap = need > 2 * s->scores_cap ? need : 2 * s->scores_cap;
        float *p = PyMem_RawRealloc(s->scores, cap * sizeof *p);
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        s->scores = p;
        s->scores_cap = cap;
    }
    memcpy(s->scores + s->scores_rows * V, src, rows * V * sizeof *src);
    s->scores_rows += rows;
    return 0;
}

static int eval_chunk(GmSessionObject *s, const int32_t *ids, size_t n) {
    gm_error err;
    gm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = gm_session_eval(s->session, ids, n, &err);
    Py_END_ALLOW_THREADS
    if (st != GM_OK) {
        gmpy_raise(&err);
        return -1;
    }
    return s->logits_all ? collect_scores(s) : 0;
}

int gmpy_session_eval_ids(GmSessionObject *s, const int32_t *ids, size_t n) {
    s->cancel = 0;
    s->scores_rows = 0;
    if (n > GMPY_EVAL_CHUNK && validate_chunked(s, ids, n) < 0) return -1;
    size_t done = 0;
    do {
        size_t k = n - done < GMPY_EVAL_CHUNK ? n - done : GMPY_EVAL_CHUNK;
        if (eval_chunk(s, ids + done, k) < 0) return -1;
        done += k;
        if (done < n && PyErr_CheckSignals() < 0) return -1;
    } while (done < n);
    return 0;
}

PyDoc_STRVAR(eval_doc,
"eval(tokens)\n\n"
"Appends token ids (list or 1-D integer array) to the context and runs\n"
"them through the model. Afterwards `logits` holds the last position's\n"
"logits (and `scores` every position's, with logits_all=True). Raises\n"
"ArgumentError (empty, id outside the vocabulary) or ContextOverflowError\n"
"without changing the context. Ctrl-C (KeyboardInterrupt) and cancel()\n"
"stop between chunks of 128 tokens; finished chunks stay in the context.");

static PyObject *Session_eval(GmSessionObject *s, PyObject *tokens) {
    gmpy_ids ids;
    if (gmpy_ids_from_object(tokens, "tokens", &ids) < 0) return NULL;
    int rc = -1;
    if (gmpy_session_enter(s) == 0) {
        rc = gmpy_session_eval_ids(s, ids.v, ids.n);
        gmpy_session_leave(s);
    }
    gmpy_ids_free(&ids);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *float_array(const float *src, int nd, npy_intp *dims) {
    PyObject *a = PyArray_SimpleNew(nd, dims, NPY_FLOAT32);
    size_t nbytes = a ? (size_t)PyArray_NBYTES((PyArrayObject *)a) : 0;
    if (nbytes) memcpy(PyArray_DATA((PyArrayObject *)a), src, nbytes); /* src may be NULL when empty */
    return a;
}

static PyObject *Session_logits(GmSessionObject *s, void *closure) {
    if (gmpy_session_enter(s) < 0) return NULL;
    const float *l = gm_session_logits(s->session);
    npy_intp dims[1] = {s->n_vocab};
    PyObject *r = l ? float_array(l, 1, dims) : Py_NewRef(Py_None);
    gmpy_session_leave(s);
    return r;
}

static PyObject *Session_scores(GmSessionObject *s, void *closure) {
    if (!s->logits_all && s->session)
        return gmpy_state_error("scores need a session created with logits_all=True");
    if (gmpy_session_enter(s) < 0) return NULL;
    npy_intp dims[2] = {(npy_intp)s->scores_rows, s->n_vocab};
    PyObject *r = float_array(s->scores, 2, dims);
    gmpy_session_leave(s);
    return r;
}

/* ---- context ---- */

PyDoc_STRVAR(truncate_doc,
"truncate(n)\n\n"
"Keeps the first n tokens of the context (n <= n_past), e.g. to reuse a\n"
"shared prefix. Afterwards `logits` are those of position n-1. Cheap when\n"
"the sliding window still holds what is needed, else the prefix is\n"
"re-evaluated (exact, slower).");

static PyObject *Session_truncate(GmSessionObject *s, PyObject *arg) {
    if (!PyIndex_Check(arg) || PyBool_Check(arg))
        return PyErr_Format(PyExc_TypeError, "n must be an int, not %.80s", Py_TYPE(arg)->tp_name);
    Py_ssize_t n = PyNumber_AsSsize_t(arg, NULL); /* clipped on overflow */
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0) return PyErr_Format(gmpy_ArgumentError, "n must be >= 0, got %zd", n);
    if (gmpy_session_enter(s) < 0) return NULL;
    gm_error err;
    gm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = gm_session_truncate(s->session, (size_t)n, &err);
    Py_END_ALLOW_THREADS
    s->scores_rows = 0;
    s->epoch++;
    gmpy_session_leave(s);
    if (st != GM_OK) return gmpy_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *Session_reset(GmSessionObject *s, PyObject *unused) {
    if (gmpy_session_enter(s) < 0) return NULL;
    gm_session_reset(s->session);
    s->scores_rows = 0;
    s->epoch++;
    gmpy_session_leave(s);
    Py_RETURN_NONE;
}

static PyObject *Session_sample(GmSessionObject *s, PyObject *unused) {
    if (gmpy_session_enter(s) < 0) return NULL;
    gm_error err;
    int32_t tok = -1;
    gm_status st = gm_session_sample(s->session, &tok, &err);
    gmpy_session_leave(s);
    return st == GM_OK ? PyLong_FromLong(tok) : gmpy_raise(&err);
}

/* ---- sampler settings and generation ---- */

/* Gives the core the sampler of this call: its overrides, or back to the session's own. */
static int prepare_sampler(GmSessionObject *s, const gm_bind_params *p, int overridden) {
    if (!overridden && !s->sampler_dirty) return 0;
    gm_error err;
    const gm_sampler_params *sp = overridden ? &p->session.sampler : &s->params.session.sampler;
    if (gm_session_set_sampler(s->session, sp, &err) != GM_OK) {
        gmpy_raise(&err);
        return -1;
    }
    s->sampler_dirty = overridden;
    return 0;
}

PyDoc_STRVAR(configure_doc,
"configure(**options)\n\n"
"Changes this session's sampler and generation defaults (temperature,\n"
"top_k, seed, max_tokens, stop, ...). Setting any sampler option restarts\n"
"the random stream from `seed`.");

static PyObject *Session_configure(GmSessionObject *s, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args)) return PyErr_Format(PyExc_TypeError, "configure() takes keyword options only");
    gm_bind_params p;
    unsigned touched;
    gm_bind_params_copy(&p, &s->params);
    if (gmpy_apply_options(&p, kwds, CALL_GROUPS, "Session.configure()", &touched) < 0) return NULL;
    if (gmpy_session_enter(s) < 0) return NULL;
    int rc = touched & GMPY_GROUP(GM_OPT_SAMPLER) ? prepare_sampler(s, &p, 1) : 0;
    if (rc == 0) {
        gm_bind_params_copy(&s->params, &p);
        s->sampler_dirty = 0;
    }
    gmpy_session_leave(s);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* The prompt of generate(): None, text (tokenized with the model's tokenizer) or ids. */
static int prompt_ids(GmSessionObject *s, PyObject *prompt, PyObject *bos, PyObject *special, gmpy_ids *out) {
    out->v = NULL;
    out->n = 0;
    if (prompt == Py_None) return 0;
    if (!PyUnicode_Check(prompt) && !PyBytes_Check(prompt)) return gmpy_ids_from_object(prompt, "prompt", out);
    int add_bos = gmpy_flag(bos, gm_session_n_past(s->session) == 0, "add_bos");
    int sp = add_bos < 0 ? -1 : gmpy_flag(special, 1, "special");
    if (sp < 0) return -1;
    const gm_tokenizer *tok = gm_model_tokenizer(gm_session_model(s->session));
    int users = 0; /* the session keeps the core model (and its tokenizer) alive */
    if (!tok) return gmpy_no_tokenizer("this model"), -1;
    return gmpy_encode_ids(tok, &users, prompt, add_bos, sp, out);
}

/* Evaluates the prompt, sets the sampler, begins the generation (session entered). */
static int begin(GmSessionObject *s, PyObject *prompt, PyObject *bos, PyObject *special,
                 const gm_bind_params *p, unsigned touched, Py_ssize_t *n_prompt) {
    gmpy_ids ids;
    if (prompt_ids(s, prompt, bos, special, &ids) < 0) return -1;
    int rc = prompt == Py_None ? 0 : gmpy_session_eval_ids(s, ids.v, ids.n);
    *n_prompt = (Py_ssize_t)ids.n;
    gmpy_ids_free(&ids);
    if (rc < 0 || prepare_sampler(s, p, (touched & GMPY_GROUP(GM_OPT_SAMPLER)) != 0) < 0) return -1;
    gm_error err;
    if (gm_session_generate_begin(s->session, &p->generate, &err) != GM_OK) {
        gmpy_raise(&err);
        return -1;
    }
    s->cancel = 0;
    s->epoch++;
    return 0;
}

PyDoc_STRVAR(generate_doc,
"generate(prompt=None, *, add_bos=None, special=True, yield_ids=False, **options) -> Generation\n\n"
"Evaluates `prompt` (str/bytes, tokenized with the model's tokenizer, or\n"
"token ids; None continues from the current context) and returns an\n"
"iterator that produces one text piece per generated token (complete UTF-8\n"
"characters only; '' for tokens without text yet), or token ids with\n"
"yield_ids=True. Stop tokens are not added to the context. After the loop,\n"
"the iterator's finish_reason is 'stop' or 'length' and tokens lists the ids.\n"
"add_bos defaults to True on an empty context. Options: sampler and\n"
"generation options (temperature, top_k, top_p, min_p, repeat_penalty,\n"
"seed, logit_bias, max_tokens, stop, ignore_eos); sampler options apply to\n"
"this generation only and restart the random stream from `seed`.");

static PyObject *Session_generate(GmSessionObject *s, PyObject *args, PyObject *kwds) {
    PyObject *kw = kwds ? PyDict_Copy(kwds) : NULL, *result = NULL;
    PyObject *prompt = gmpy_kw_take(kw, "prompt"), *bos = gmpy_kw_take(kw, "add_bos");
    PyObject *special = gmpy_kw_take(kw, "special"), *ids = gmpy_kw_take(kw, "yield_ids");
    gm_bind_params p;
    unsigned touched;
    Py_ssize_t n_prompt = 0;
    if (kwds && !kw) goto finally;
    if (PyTuple_GET_SIZE(args) > (prompt ? 0 : 1)) {
        PyErr_SetString(PyExc_TypeError, "generate() takes one positional argument (prompt)");
        goto finally;
    }
    if (!prompt) prompt = Py_NewRef(PyTuple_GET_SIZE(args) ? PyTuple_GET_ITEM(args, 0) : Py_None);
    int yield_ids = gmpy_flag(ids, 0, "yield_ids");
    gm_bind_params_copy(&p, &s->params);
    if (yield_ids < 0 || gmpy_apply_options(&p, kw, CALL_GROUPS, "Session.generate()", &touched) < 0)
        goto finally;
    if (gmpy_session_enter(s) < 0) goto finally;
    int rc = begin(s, prompt, bos, special, &p, touched, &n_prompt);
    gmpy_session_leave(s);
    if (rc == 0) result = gmpy_generation_new(s, yield_ids, n_prompt);
finally:
    Py_XDECREF(kw);
    Py_XDECREF(prompt);
    Py_XDECREF(bos);
    Py_XDECREF(special);
    Py_XDECREF(ids);
    return result;
}

PyDoc_STRVAR(continuation_logprobs_doc,
"continuation_logprobs(tokens) -> (numpy.ndarray[float64], numpy.ndarray[bool])\n\n"
"Log-probabilities log p(tokens[i] | context + tokens[:i]) of `tokens`\n"
"continuing the current context (which must not be empty), and whether\n"
"each token is the greedy (argmax) choice. Evaluates tokens[:-1] (in one\n"
"batch when the session has logits_all=True, else one by one), then\n"
"truncates back: the context is unchanged afterwards.");

static PyObject *Session_continuation_logprobs(GmSessionObject *s, PyObject *tokens) {
    return gmpy_session_continuation_logprobs(s, tokens);
}

/* ---- properties ---- */

static PyObject *Session_n_past(GmSessionObject *s, void *c) {
    return s->session ? PyLong_FromSize_t(gm_session_n_past(s->session)) : gmpy_state_error("the session is closed");
}

static PyObject *Session_n_ctx(GmSessionObject *s, void *c) {
    return s->session ? PyLong_FromSize_t(gm_session_n_ctx(s->session)) : gmpy_state_error("the session is closed");
}

static PyObject *Session_tokens(GmSessionObject *s, void *c) {
    if (gmpy_session_enter(s) < 0) return NULL;
    size_t n = 0;
    const int32_t *t = gm_session_tokens(s->session, &n);
    PyObject *r = gmpy_ids_to_list(t, n);
    gmpy_session_leave(s);
    return r;
}

static PyObject *Session_model(GmSessionObject *s, void *c) { return Py_NewRef(s->model ? s->model : Py_None); }
static PyObject *Session_closed(GmSessionObject *s, void *c) { return PyBool_FromLong(!s->session); }
static PyObject *Session_logits_all(GmSessionObject *s, void *c) { return PyBool_FromLong(s->logits_all); }

static PyObject *Session_repr(GmSessionObject *s) {
    if (!s->session) return PyUnicode_FromFormat("<gemma3n.Session closed>");
    return PyUnicode_FromFormat("<gemma3n.Session n_past=%zu n_ctx=%zu>", gm_session_n_past(s->session),
                                gm_session_n_ctx(s->session));
}

#define KW_METHOD(name, fn, doc) {name, (PyCFunction)(void (*)(void))fn, METH_VARARGS | METH_KEYWORDS, doc}

static PyMethodDef Session_methods[] = {
    {"eval", (PyCFunction)Session_eval, METH_O, eval_doc},
    {"truncate", (PyCFunction)Session_truncate, METH_O, truncate_doc},
    {"reset", (PyCFunction)Session_reset, METH_NOARGS,
     "reset()\n\nEmpties the context and re-seeds the sampler."},
    {"sample", (PyCFunction)Session_sample, METH_NOARGS,
     "sample() -> int\n\nSamples one token from `logits` with the session's sampler (nothing is evaluated)."},
    KW_METHOD("configure", Session_configure, configure_doc),
    KW_METHOD("generate", Session_generate, generate_doc),
    {"continuation_logprobs", (PyCFunction)Session_continuation_logprobs, METH_O, continuation_logprobs_doc},
    {"cancel", (PyCFunction)Session_cancel, METH_NOARGS, cancel_doc},
    {"close", (PyCFunction)Session_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)Session_enter_ctx, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Session_exit_ctx, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Session_getset[] = {
    {"logits", (getter)Session_logits, NULL,
     "numpy float32 [n_vocab]: logits of the last evaluated position (a copy), or None", NULL},
    {"scores", (getter)Session_scores, NULL,
     "numpy float32 [n_tokens, n_vocab]: logits of every position of the last eval() (logits_all=True)", NULL},
    {"n_past", (getter)Session_n_past, NULL, "tokens in the context", NULL},
    {"n_ctx", (getter)Session_n_ctx, NULL, "maximum tokens in the context", NULL},
    {"tokens", (getter)Session_tokens, NULL, "list[int]: the context", NULL},
    {"model", (getter)Session_model, NULL, "the Model", NULL},
    {"closed", (getter)Session_closed, NULL, "True after close()", NULL},
    {"logits_all", (getter)Session_logits_all, NULL, "True when scores are kept", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Session_doc,
"A conversation on a Model: KV cache, sampler and token history.\n\n"
"Created by Model.session(**options). One thread at a time: a call from a\n"
"second thread while one runs raises StateError (sessions of the same model\n"
"may run in parallel threads). Holds its Model alive.");

static PyType_Slot Session_slots[] = {
    GMPY_DOC_SLOT(Session_doc),
    {Py_tp_new, Session_new},
    {Py_tp_dealloc, Session_dealloc},
    {Py_tp_traverse, Session_traverse},
    {Py_tp_clear, Session_clear},
    {Py_tp_repr, Session_repr},
    {Py_tp_methods, Session_methods},
    {Py_tp_getset, Session_getset},
    {0, NULL},
};

PyType_Spec gmpy_session_spec = {
    "gemma3n.Session", sizeof(GmSessionObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, Session_slots,
};
