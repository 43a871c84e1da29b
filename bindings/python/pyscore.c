/*
 * pyscore.c - Session.continuation_logprobs: log-likelihood scoring for
 * evaluation harnesses (lm-eval's loglikelihood, MMLU-style multiple choice).
 *
 * For a context c (already evaluated) and a continuation t[0..n):
 *   log p(t[0] | c)          = log_softmax(logits after c)[t[0]]
 *   log p(t[i] | c, t[:i])   = log_softmax(logits after t[i-1])[t[i]]
 * so only t[:-1] is evaluated: with a logits_all session in one batch (the
 * rows of `scores`), otherwise one token at a time. The context is then
 * truncated back to c, so several continuations of one shared context cost
 * one context evaluation in total (a 1-token continuation costs nothing).
 * log_softmax is computed in double; greedy means the token's logit is the
 * row's maximum (lm-eval's is_greedy).
 */
#include "gmpy.h"

#include <math.h>

/* log_softmax(row)[tok] and whether tok is an argmax of the row. */
static double row_logprob(const float *row, size_t V, int32_t tok, npy_bool *greedy) {
    float mx = row[0];
    for (size_t i = 1; i < V; i++)
        if (row[i] > mx) mx = row[i];
    double sum = 0.0;
    for (size_t i = 0; i < V; i++) sum += exp((double)row[i] - (double)mx);
    *greedy = (npy_bool)(row[tok] >= mx);
    return (double)row[tok] - (double)mx - log(sum);
}

/* The checks one batched eval would do, for every token (the last one is never evaluated). */
static int validate(GmSessionObject *s, const gmpy_ids *t) {
    if (t->n == 0) {
        PyErr_SetString(gmpy_ArgumentError, "the continuation is empty");
        return -1;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i] < 0 || t->v[i] >= s->n_vocab) {
            PyErr_Format(gmpy_ArgumentError, "tokens[%zu] = %d is outside the vocabulary [0, %d)", i,
                         (int)t->v[i], (int)s->n_vocab);
            return -1;
        }
    if (!gm_session_logits(s->session) || gm_session_n_past(s->session) == 0) {
        gmpy_state_error("evaluate a context before scoring a continuation");
        return -1;
    }
    size_t past = gm_session_n_past(s->session), ctx = gm_session_n_ctx(s->session);
    if (t->n - 1 > ctx - past) {
        gm_error err = {.status = GM_ERR_CONTEXT_OVERFLOW};
        snprintf(err.message, sizeof err.message,
                 "context overflow: %zu tokens in the context + %zu of the continuation > n_ctx %zu", past,
                 t->n - 1, ctx);
        gmpy_raise(&err);
        return -1;
    }
    return 0;
}

/* One token at a time: lp[i] from the logits after t[i-1] (session entered). */
static int score_stepwise(GmSessionObject *s, const gmpy_ids *t, double *lp, npy_bool *greedy) {
    size_t V = (size_t)s->n_vocab;
    for (size_t i = 1; i < t->n; i++) {
        if (PyErr_CheckSignals() < 0) return -1;
        gm_error err;
        gm_status st;
        Py_BEGIN_ALLOW_THREADS
        st = gm_session_eval(s->session, &t->v[i - 1], 1, &err);
        if (st == GM_OK) lp[i] = row_logprob(gm_session_logits(s->session), V, t->v[i], &greedy[i]);
        Py_END_ALLOW_THREADS
        if (st != GM_OK) {
            gmpy_raise(&err);
            return -1;
        }
    }
    return 0;
}

/* In one (chunked) batch: lp[i] from row i-1 of the scores of t[:-1] (session entered). */
static int score_batched(GmSessionObject *s, const gmpy_ids *t, double *lp, npy_bool *greedy) {
    if (t->n < 2) return 0;
    if (gmpy_session_eval_ids(s, t->v, t->n - 1) < 0) return -1;
    size_t V = (size_t)s->n_vocab;
    const float *rows = s->scores;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 1; i < t->n; i++) lp[i] = row_logprob(rows + (i - 1) * V, V, t->v[i], &greedy[i]);
    Py_END_ALLOW_THREADS
    return 0;
}

/* Back to n_past = n0, keeping any exception being raised. */
static int restore_context(GmSessionObject *s, size_t n0) {
    if (gm_session_n_past(s->session) == n0) return 0;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    gm_error err;
    gm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = gm_session_truncate(s->session, n0, &err);
    Py_END_ALLOW_THREADS
    s->scores_rows = 0;
    if (type) {
        PyErr_Restore(type, value, tb);
        return -1;
    }
    if (st != GM_OK) {
        gmpy_raise(&err);
        return -1;
    }
    return 0;
}

static int score(GmSessionObject *s, const gmpy_ids *t, double *lp, npy_bool *greedy) {
    if (validate(s, t) < 0) return -1;
    size_t n0 = gm_session_n_past(s->session);
    const float *last = gm_session_logits(s->session);
    size_t V = (size_t)s->n_vocab;
    Py_BEGIN_ALLOW_THREADS
    lp[0] = row_logprob(last, V, t->v[0], &greedy[0]);
    Py_END_ALLOW_THREADS
    s->cancel = 0;
    int rc = s->logits_all ? score_batched(s, t, lp, greedy) : score_stepwise(s, t, lp, greedy);
    return restore_context(s, n0) < 0 ? -1 : rc;
}

PyObject *gmpy_session_continuation_logprobs(GmSessionObject *s, PyObject *tokens) {
    gmpy_ids t;
    if (gmpy_ids_from_object(tokens, "tokens", &t) < 0) return NULL;
    npy_intp dims[1] = {(npy_intp)t.n};
    PyArrayObject *lp = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    PyArrayObject *greedy = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_BOOL);
    PyObject *result = NULL;
    if (lp && greedy && gmpy_session_enter(s) == 0) {
        int rc = score(s, &t, (double *)PyArray_DATA(lp), (npy_bool *)PyArray_DATA(greedy));
        gmpy_session_leave(s);
        if (rc == 0) result = PyTuple_Pack(2, (PyObject *)lp, (PyObject *)greedy);
    }
    Py_XDECREF(lp);
    Py_XDECREF(greedy);
    gmpy_ids_free(&t);
    return result;
}
