/*
 * pyiter.c - Generation: the iterator Session.generate() returns.
 *
 * Each __next__ is one gm_session_next call (sample, append, evaluate one
 * token) with the GIL released, yielding the text that token completes
 * (complete UTF-8 characters only, '' when it completes none) or, with
 * yield_ids=True, the token id. Pending signals are checked before each
 * step, so Ctrl-C stops a generation within one token even when the
 * iterator is consumed from C (list(), str.join). The iterator holds a
 * strong reference to its Session (python-zstandard's compressoriterator).
 *
 * End of generation: a stop token (eos, <end_of_turn>) is not added to the
 * context and yields nothing (its id is yielded with yield_ids=True); held
 * back text (a stop-string prefix that never completed) comes as a last
 * piece. finish_reason is then 'stop' or 'length'.
 */
#include "gmpy.h"

PyObject *gmpy_generation_new(GmSessionObject *s, int yield_ids, Py_ssize_t n_prompt) {
    GmGenerationObject *g = (GmGenerationObject *)gmpy_GenerationType->tp_alloc(gmpy_GenerationType, 0);
    if (!g) return NULL;
    if (!(g->tokens = PyList_New(0))) {
        Py_DECREF(g);
        return NULL;
    }
    Py_INCREF(s);
    g->session = s;
    g->epoch = s->epoch;
    g->yield_ids = yield_ids;
    g->stop_token = -1;
    g->n_prompt = n_prompt;
    return (PyObject *)g;
}

static int Generation_traverse(GmGenerationObject *g, visitproc visit, void *arg) {
    GMPY_VISIT_TYPE(g);
    Py_VISIT(g->session);
    Py_VISIT(g->tokens);
    return 0;
}

static int Generation_clear(GmGenerationObject *g) {
    Py_CLEAR(g->session);
    Py_CLEAR(g->tokens);
    return 0;
}

static void Generation_dealloc(GmGenerationObject *g) {
    PyTypeObject *tp = Py_TYPE(g);
    PyObject_GC_UnTrack(g);
    Generation_clear(g);
    tp->tp_free((PyObject *)g);
    Py_DECREF(tp);
}

static PyObject *Generation_new(PyTypeObject *t, PyObject *a, PyObject *k) {
    PyErr_SetString(PyExc_TypeError, "Generation objects are created by Session.generate()");
    return NULL;
}

/* Records the step and returns what to yield (NULL without an exception = StopIteration). */
static PyObject *deliver(GmGenerationObject *g, const gm_step *step, int appended, PyObject *piece) {
    if (step->token >= 0) {
        PyObject *id = PyLong_FromLong(step->token);
        if (!id) {
            Py_XDECREF(piece);
            return NULL;
        }
        if (!appended) g->stop_token = step->token;
        if (appended && PyList_Append(g->tokens, id) < 0) {
            Py_DECREF(id);
            Py_XDECREF(piece);
            return NULL;
        }
        if (g->yield_ids) {
            Py_XDECREF(piece);
            piece = id;
        } else {
            Py_DECREF(id);
        }
    }
    if (step->finish != GM_FINISH_NONE) {
        g->done = 1;
        g->finish = step->finish;
        /* a finishing step that added no token and no text ends the iteration right away */
        if (piece && !g->yield_ids && !appended && PyUnicode_GET_LENGTH(piece) == 0) Py_CLEAR(piece);
    }
    return piece;
}

static PyObject *Generation_next(GmGenerationObject *g) {
    if (g->done || !g->session) return NULL;
    GmSessionObject *s = g->session;
    if (g->epoch != s->epoch) {
        g->done = 1;
        g->finish_why = "error";
        return gmpy_state_error("this generation was ended by a later generate(), reset(), truncate() "
                                "or close() of its session");
    }
    if (PyErr_CheckSignals() < 0) return NULL;
    if (gmpy_session_enter(s) < 0) return NULL;
    gm_step step;
    gm_error err;
    gm_status st;
    size_t before = gm_session_n_past(s->session);
    Py_BEGIN_ALLOW_THREADS
    st = gm_session_next(s->session, &step, &err);
    Py_END_ALLOW_THREADS
    int appended = gm_session_n_past(s->session) > before;
    /* step.text lives until the next core call: copy it before another thread may make one */
    PyObject *piece = st == GM_OK && !g->yield_ids
                          ? PyUnicode_DecodeUTF8(step.text, (Py_ssize_t)step.text_len, "replace")
                          : NULL;
    gmpy_session_leave(s);
    if (st != GM_OK) {
        g->done = 1;
        g->finish_why = st == GM_ERR_CANCELLED ? "cancelled" : "error";
        return gmpy_raise(&err);
    }
    if (!g->yield_ids && !piece) return NULL;
    return deliver(g, &step, appended, piece);
}

/* ---- attributes ---- */

static PyObject *Generation_finish_reason(GmGenerationObject *g, void *c) {
    if (g->finish == GM_FINISH_STOP) return PyUnicode_FromString("stop");
    if (g->finish == GM_FINISH_LENGTH) return PyUnicode_FromString("length");
    if (g->finish_why) return PyUnicode_FromString(g->finish_why);
    Py_RETURN_NONE;
}

static PyObject *Generation_tokens(GmGenerationObject *g, void *c) {
    return g->tokens ? PySequence_List(g->tokens) : PyList_New(0);
}

static PyObject *Generation_stop_token(GmGenerationObject *g, void *c) {
    if (g->stop_token < 0) Py_RETURN_NONE;
    return PyLong_FromLong(g->stop_token);
}

static PyObject *Generation_n_prompt(GmGenerationObject *g, void *c) { return PyLong_FromSsize_t(g->n_prompt); }
static PyObject *Generation_done(GmGenerationObject *g, void *c) { return PyBool_FromLong(g->done); }

static PyObject *Generation_session(GmGenerationObject *g, void *c) {
    return Py_NewRef(g->session ? (PyObject *)g->session : Py_None);
}

static PyObject *Generation_close(GmGenerationObject *g, PyObject *unused) {
    g->done = 1;
    Py_RETURN_NONE;
}

static PyObject *Generation_repr(GmGenerationObject *g) {
    return PyUnicode_FromFormat("<gemma3n.Generation %zd tokens%s>", g->tokens ? PyList_GET_SIZE(g->tokens) : 0,
                                g->done ? ", done" : "");
}

static PyMethodDef Generation_methods[] = {
    {"close", (PyCFunction)Generation_close, METH_NOARGS,
     "close()\n\nStops iterating (the tokens generated so far stay in the session's context)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Generation_getset[] = {
    {"finish_reason", (getter)Generation_finish_reason, NULL,
     "'stop' (stop token or stop string), 'length' (max_tokens or a full context), "
     "'cancelled', 'error', or None while running", NULL},
    {"tokens", (getter)Generation_tokens, NULL, "list[int]: generated ids added to the context", NULL},
    {"stop_token", (getter)Generation_stop_token, NULL, "the stop token that ended generation, or None", NULL},
    {"n_prompt_tokens", (getter)Generation_n_prompt, NULL, "tokens of the prompt generate() evaluated", NULL},
    {"done", (getter)Generation_done, NULL, "True once the iteration is over", NULL},
    {"session", (getter)Generation_session, NULL, "the Session", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Generation_doc,
"Iterator over a generation: one text piece (or id, yield_ids=True) per token.\n\n"
"Attributes after (or during) the loop: finish_reason, tokens, stop_token,\n"
"n_prompt_tokens. Created by Session.generate().");

static PyType_Slot Generation_slots[] = {
    GMPY_DOC_SLOT(Generation_doc),
    {Py_tp_new, Generation_new},
    {Py_tp_dealloc, Generation_dealloc},
    {Py_tp_traverse, Generation_traverse},
    {Py_tp_clear, Generation_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, Generation_next},
    {Py_tp_repr, Generation_repr},
    {Py_tp_methods, Generation_methods},
    {Py_tp_getset, Generation_getset},
    {0, NULL},
};

PyType_Spec gmpy_generation_spec = {
    "gemma3n.Generation", sizeof(GmGenerationObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    Generation_slots,
};
