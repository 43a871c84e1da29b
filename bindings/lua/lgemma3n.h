/*
** lgemma3n.h - declarations shared by the files of the Lua 5.4 module.
**
** The module is cut by concern, as LPeg is:
**   lgemma3n.c      luaopen_gemma3n, module functions, the Model type,
**                   error triples, option tables, token-id tables
**   lgm_session.c   the Session type (eval, logits, reset, ...) and the
**                   Logits type
**   lgm_generate.c  jobs (prompt -> context -> generation begun) and the
**                   synchronous paths: generate/chat iterators, step,
**                   format_chat
**   lgm_worker.c    background generation: start, poll, wait, cancel
**
** Error convention (liolib, luv): wrong Lua types, bad option names or
** values, closed handles and busy sessions raise; everything the core
** reports (a gm_status) comes back as `nil, message, code` where code is
** gm_status_name(). The generate/chat iterators raise instead, as
** io.lines does, because a generic `for` cannot take a nil iterator.
*/
#ifndef LGEMMA3N_H
#define LGEMMA3N_H

#include "gm_bind.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#  define LGM_EXPORT __attribute__((visibility("default")))
#else
#  define LGM_EXPORT
#endif

#define LGM_MODEL "gemma3n.Model"
#define LGM_SESSION "gemma3n.Session"
#define LGM_GENERATION "gemma3n.Generation"
#define LGM_LOGITS "gemma3n.Logits"

/* Option groups (gm_opt_group) as a mask: which options a call accepts. */
#define LGM_G(g) (1u << (g))
#define LGM_PER_CALL (LGM_G(GM_OPT_SAMPLER) | LGM_G(GM_OPT_GENERATE))

/* A model handle. Created closed (m == NULL), then opened. */
typedef struct lgm_model {
    gm_model *m; /* our reference; sessions hold their own (core refcount) */
} lgm_model;

typedef struct lgm_worker lgm_worker;

/*
** A session handle. User value 1 is the Model userdata it came from,
** which keeps it alive on the Lua side; the core's refcount keeps the
** gm_model alive whatever order the two are collected in.
*/
typedef struct lgm_session {
    gm_session *s;           /* NULL = closed */
    lgm_worker *worker;      /* background job from start until poll/wait reports it done */
    unsigned serial;         /* bumped by every call that changes the context (stale iterators see it) */
    bool sampler_custom;     /* the core sampler holds one call's options instead of `defaults` */
    gm_bind_params defaults; /* options of model:session; stop/bias point into this struct */
} lgm_session;

/*
** What one generation starts from. Runs without Lua (lgm_job_begin), so
** the same code serves the synchronous calls and the worker thread.
*/
typedef struct lgm_job {
    bool has_prompt;         /* false: continue from the context as it is */
    const char *text;        /* prompt text (tokenized when the job begins), or NULL */
    size_t len;
    const int32_t *ids;      /* prompt ids when text is NULL */
    size_t n_ids;
    bool chat;               /* text is a whole formatted conversation: reuse the common prefix */
    const gm_generate_params *gen;
} lgm_job;

/* ---- lgemma3n.c ---- */
LGM_EXPORT int luaopen_gemma3n(lua_State *L);
int lgm_fail(lua_State *L, const gm_error *err);
int lgm_fail_status(lua_State *L, gm_status st, const char *msg);
void lgm_newclass(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);
lgm_model *lgm_checkmodel(lua_State *L, int arg);
unsigned lgm_read_options(lua_State *L, int arg, gm_bind_params *p, unsigned groups);
void lgm_read_flags(lua_State *L, int arg, const char *const *names, bool *values);
int32_t *lgm_check_ids(lua_State *L, int arg, size_t *n);
void lgm_push_ids(lua_State *L, const int32_t *ids, size_t n);
int32_t lgm_vocab_size(const gm_model *m);

/* ---- lgm_session.c ---- */
void lgm_open_session(lua_State *L);
int lgm_model_session(lua_State *L);
lgm_session *lgm_checksession(lua_State *L, int arg);
lgm_session *lgm_checkidle(lua_State *L, int arg);
gm_status lgm_call_options(lua_State *L, lgm_session *S, int arg, gm_bind_params *call, gm_error *err);

/* ---- lgm_generate.c ---- */
void lgm_open_generate(lua_State *L);
gm_status lgm_job_begin(gm_session *s, const lgm_job *job, gm_error *err);
void lgm_read_prompt(lua_State *L, int arg, lgm_job *job);
bool lgm_push_chat(lua_State *L, int arg, bool generation_prompt, bool bos, gm_error *err);
const char *lgm_finish_name(gm_finish f);
int lgm_format_chat(lua_State *L);
int lgm_session_generate(lua_State *L);
int lgm_session_chat(lua_State *L);
int lgm_session_step(lua_State *L);

/* ---- lgm_worker.c ---- */
int lgm_session_start(lua_State *L);
int lgm_session_start_chat(lua_State *L);
int lgm_session_poll(lua_State *L);
int lgm_session_wait(lua_State *L);
int lgm_session_cancel(lua_State *L);
void lgm_worker_stop(lgm_session *S);

#endif
