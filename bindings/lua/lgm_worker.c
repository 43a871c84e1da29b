/*
** lgm_worker.c - background generation for hosts with a frame loop.
**
**   s:start(prompt, opts)   hands the job to a new pthread; returns at once
**   s:poll()                text produced since the last poll, done?, reason
**   s:wait()                blocks until the job ends; same results as poll
**   s:cancel()              asks the job to stop; returns at once
**
** Threading contract. The worker thread owns the gm_session from start
** until poll/wait has reported the job done (the session is "busy"); the
** Lua side then only touches the lgm_worker, under its mutex, and only to
** swap text buffers and read the final status, so a poll costs a lock and
** a copy of the new text. The worker never calls into Lua: it only runs
** core calls and appends bytes. Cancellation uses the core's cancel flag
** (checked between prompt batches and before each token). __gc/__close of
** a busy session cancels and joins (lgm_worker_stop).
**
** Every runtime error of the job (no tokenizer, empty prompt, context
** overflow, ...) is reported by poll/wait as `nil, message, code`: start
** itself only fails on bad arguments (raise) or when no thread can be made.
*/
#include "lgemma3n.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lgm_text {
    char *data;
    size_t len, cap;
} lgm_text;

/*
** The core's cancel flag is a `const volatile int *` that "may be set from
** any thread". Our store is atomic where the compiler can say so, which
** leaves the core's plain volatile read as the only half a race detector
** can flag (ThreadSanitizer does; see the note in lua/README.md).
*/
#if defined(__GNUC__)
#  define set_cancel(w) __atomic_store_n(&(w)->cancel, 1, __ATOMIC_RELEASE)
#else
#  define set_cancel(w) ((w)->cancel = 1)
#endif

struct lgm_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    gm_session *s;
    lgm_job job;            /* prompt bytes live at the end of this allocation */
    gm_bind_params params;  /* the call's options; job.gen points at params.generate */
    volatile int cancel;    /* the core's cancel flag: 0 = run, 1 = stop */
    bool joined;            /* Lua side: pthread_join done */
    /* guarded by mu */
    lgm_text out;           /* produced since the last poll */
    bool done;
    gm_status status;
    gm_finish finish;
    gm_error err;
    /* Lua side only */
    lgm_text spare;         /* the buffer poll swapped out last time (kept for its capacity) */
};

/*
** {======================================================
** The worker thread (no Lua in here)
** =======================================================
*/

static bool text_append(lgm_text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *d = realloc(t->data, cap);
        if (!d) return false;
        t->data = d;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    return true;
}

static gm_status publish(lgm_worker *w, const gm_step *step, gm_error *err) {
    if (step->text_len == 0) return GM_OK;
    pthread_mutex_lock(&w->mu);
    bool ok = text_append(&w->out, step->text, step->text_len);
    pthread_mutex_unlock(&w->mu);
    if (ok) return GM_OK;
    err->status = GM_ERR_OUT_OF_MEMORY;
    snprintf(err->message, sizeof err->message, "out of memory buffering generated text");
    return GM_ERR_OUT_OF_MEMORY;
}

static void *worker_main(void *arg) {
    lgm_worker *w = arg;
    gm_error err;
    gm_step step = {.finish = GM_FINISH_NONE};
    gm_status st = lgm_job_begin(w->s, &w->job, &err);
    while (st == GM_OK && step.finish == GM_FINISH_NONE) {
        st = gm_session_next(w->s, &step, &err);
        if (st == GM_OK) st = publish(w, &step, &err);
    }
    pthread_mutex_lock(&w->mu);
    w->status = st;
    w->finish = step.finish;
    if (st != GM_OK) w->err = err;
    w->done = true;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* }====================================================== */

/*
** {======================================================
** Lua side
** =======================================================
*/

/* A worker with a private copy of the prompt (Lua strings and tables may change or go away). */
static lgm_worker *worker_new(gm_session *s, const lgm_job *job, const gm_bind_params *call) {
    size_t ids_bytes = job->text ? 0 : job->n_ids * sizeof(int32_t);
    size_t text_bytes = job->text ? job->len + 1 : 0;
    lgm_worker *w = calloc(1, sizeof *w + ids_bytes + text_bytes);
    if (!w) return NULL;
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w);
        return NULL;
    }
    w->s = s;
    w->job = *job;
    gm_bind_params_copy(&w->params, call);
    w->job.gen = &w->params.generate;
    char *tail = (char *)(w + 1); /* sizeof *w is a multiple of its alignment, so int32 fits */
    if (job->text) {
        memcpy(tail, job->text, job->len);
        tail[job->len] = 0;
        w->job.text = tail;
    } else if (job->ids) {
        memcpy(tail, job->ids, ids_bytes);
        w->job.ids = (const int32_t *)(void *)tail;
    }
    return w;
}

static void worker_free(lgm_worker *w) {
    pthread_mutex_destroy(&w->mu);
    free(w->out.data);
    free(w->spare.data);
    free(w);
}

/* Waits for the thread to end (once). The session stays busy until worker_release. */
static void worker_join(lgm_worker *w) {
    if (w->joined) return;
    pthread_join(w->thread, NULL);
    w->joined = true;
}

/* Gives the session back to Lua and frees the worker. */
static void worker_release(lgm_session *S) {
    lgm_worker *w = S->worker;
    gm_session_set_cancel_flag(S->s, NULL);
    S->worker = NULL;
    worker_free(w);
}

/* For __gc/__close: stop, join, free. */
void lgm_worker_stop(lgm_session *S) {
    set_cancel(S->worker);
    worker_join(S->worker);
    worker_release(S);
}

static int start_job(lua_State *L, lgm_session *S, const lgm_job *job) {
    gm_bind_params call;
    gm_error err;
    if (lgm_call_options(L, S, 3, &call, &err) != GM_OK) return lgm_fail(L, &err);
    lgm_worker *w = worker_new(S->s, job, &call);
    if (!w) return luaL_error(L, "not enough memory");
    S->serial++;
    gm_session_set_cancel_flag(S->s, &w->cancel);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        gm_session_set_cancel_flag(S->s, NULL);
        worker_free(w);
        char msg[128];
        snprintf(msg, sizeof msg, "cannot start a worker thread: %s", strerror(rc));
        return lgm_fail_status(L, GM_ERR_OUT_OF_MEMORY, msg);
    }
    S->worker = w;
    lua_pushboolean(L, 1);
    return 1;
}

/* session:start([prompt] [, opts]) -> true | nil, msg, code */
int lgm_session_start(lua_State *L) {
    lua_settop(L, 3);
    lgm_session *S = lgm_checkidle(L, 1);
    lgm_job job;
    lgm_read_prompt(L, 2, &job);
    return start_job(L, S, &job);
}

/* session:start_chat(messages [, opts]) -> true | nil, msg, code (see session:chat) */
int lgm_session_start_chat(lua_State *L) {
    lua_settop(L, 3);
    lgm_session *S = lgm_checkidle(L, 1);
    gm_error err;
    if (!lgm_push_chat(L, 2, true, true, &err)) return lgm_fail(L, &err);
    lgm_job job = {.has_prompt = true, .chat = true};
    job.text = lua_tolstring(L, -1, &job.len);
    return start_job(L, S, &job);
}

/*
** Pushes the results of a job that is done: the remaining text, true and
** the finish reason ("stop", "length", "cancelled"); or nil, msg, code
** when it failed. Frees the worker.
*/
static int push_final(lua_State *L, lgm_session *S) {
    lgm_worker *w = S->worker;
    worker_join(w);
    /* The worker stays attached until the results are on the stack (a memory error leaks nothing). */
    lua_pushlstring(L, w->out.data ? w->out.data : "", w->out.len);
    gm_status st = w->status;
    const char *reason = st == GM_ERR_CANCELLED ? "cancelled" : lgm_finish_name(w->finish);
    if (st != GM_OK && st != GM_ERR_CANCELLED) {
        lgm_fail(L, &w->err);
        worker_release(S);
        return 3;
    }
    lua_pushboolean(L, 1);
    lua_pushstring(L, reason); /* a literal: still valid after the free below */
    worker_release(S);
    return 3;
}

/*
** session:poll() -> text, done, reason | nil, msg, code. Never blocks on
** the model: text is what was produced since the last poll ("" if
** nothing), done is false while the job runs; when it is true the
** session is idle again and reason says why the job ended.
*/
int lgm_session_poll(lua_State *L) {
    lgm_session *S = lgm_checksession(L, 1);
    lgm_worker *w = S->worker;
    if (!w) return lgm_fail_status(L, GM_ERR_STATE, "no background generation: call session:start first");
    pthread_mutex_lock(&w->mu);
    bool done = w->done;
    lgm_text t = w->out;
    if (!done) { /* hand the worker the spare buffer, keep what it wrote */
        w->out = w->spare;
        w->out.len = 0;
    }
    pthread_mutex_unlock(&w->mu);
    if (done) return push_final(L, S); /* nothing is appended after done: out holds the rest */
    w->spare = t;
    lua_pushlstring(L, t.data ? t.data : "", t.len);
    lua_pushboolean(L, 0);
    return 2;
}

/* session:wait() -> text, true, reason | nil, msg, code: blocks until the job ends. */
int lgm_session_wait(lua_State *L) {
    lgm_session *S = lgm_checksession(L, 1);
    if (!S->worker) return lgm_fail_status(L, GM_ERR_STATE, "no background generation: call session:start first");
    return push_final(L, S); /* joins first, so out holds everything since the last poll */
}

/* session:cancel() -> true if a job was running (it stops soon; poll reports "cancelled"), else false. */
int lgm_session_cancel(lua_State *L) {
    lgm_session *S = lgm_checksession(L, 1);
    if (S->worker) set_cancel(S->worker);
    lua_pushboolean(L, S->worker != NULL);
    return 1;
}

/* }====================================================== */
