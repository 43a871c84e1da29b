/*
** lgm_generate.c - jobs and synchronous generation.
**
** A job (lgm_job) is "what a generation starts from": nothing (continue
** from the context), token ids, prompt text, or a formatted conversation.
** lgm_job_begin turns it into a begun core generation without touching
** Lua, so the synchronous paths here and the worker thread (lgm_worker.c)
** run the very same code: a background generation produces exactly the
** text the synchronous one does for the same options and seed.
**
** Prompt text policy (documented in lua/README.md): special tokens written
** in the text ("<start_of_turn>") are parsed, and <bos> is prepended when
** the context is empty unless the text already starts with "<bos>". An
** empty string is an empty prompt (the core rejects it).
*/
#include "lgemma3n.h"

#include <stdlib.h>
#include <string.h>

/*
** {======================================================
** Jobs (no Lua: also run on the worker thread)
** =======================================================
*/

const char *lgm_finish_name(gm_finish f) {
    return f == GM_FINISH_STOP ? "stop" : f == GM_FINISH_LENGTH ? "length" : "none";
}

/* Tokenizes the job's text into a malloc'ed array. */
static gm_status tokenize_job(gm_session *s, const lgm_job *job, int32_t **out, size_t *n, gm_error *err) {
    const gm_model *m = gm_session_model(s);
    unsigned flags = GM_TOKENIZE_PARSE_SPECIAL;
    if (!job->chat && gm_session_n_past(s) == 0 && !(job->len >= 5 && memcmp(job->text, "<bos>", 5) == 0))
        flags |= GM_TOKENIZE_ADD_BOS;
    size_t cap = job->len + 2;
    *out = NULL;
    for (int attempt = 0;; attempt++) {
        int32_t *ids = malloc(cap * sizeof *ids);
        if (!ids) {
            err->status = GM_ERR_OUT_OF_MEMORY;
            strcpy(err->message, "out of memory");
            return GM_ERR_OUT_OF_MEMORY;
        }
        gm_status st = gm_model_tokenize(m, job->text, job->len, flags, ids, cap, n, err);
        if (st == GM_OK) {
            *out = ids;
            return GM_OK;
        }
        free(ids);
        if (st != GM_ERR_ARGUMENT || *n <= cap || attempt > 0) return st;
        cap = *n;
    }
}

/*
** A chat job holds the whole conversation: keep the longest common prefix
** of the context and the new ids, and leave at least one id to evaluate
** (its logits start the generation). Advances *ids / *n past the kept part.
*/
static gm_status keep_common_prefix(gm_session *s, const int32_t **ids, size_t *n, gm_error *err) {
    size_t n_past, k = 0;
    const int32_t *ctx = gm_session_tokens(s, &n_past);
    while (k < n_past && k < *n && ctx[k] == (*ids)[k]) k++;
    if (k > 0 && k == *n) k--;
    gm_status st = k < n_past ? gm_session_truncate(s, k, err) : GM_OK;
    *ids += k;
    *n -= k;
    return st;
}

/* Evaluates the job's prompt and begins the generation. */
gm_status lgm_job_begin(gm_session *s, const lgm_job *job, gm_error *err) {
    gm_status st = GM_OK;
    if (job->has_prompt) {
        int32_t *owned = NULL;
        const int32_t *ids = job->ids;
        size_t n = job->n_ids;
        if (job->text) {
            n = 0;
            if (job->len > 0) st = tokenize_job(s, job, &owned, &n, err);
            ids = owned;
        }
        if (st == GM_OK && job->chat && n > 0) st = keep_common_prefix(s, &ids, &n, err);
        if (st == GM_OK) st = gm_session_eval(s, ids, n, err); /* n == 0: "empty prompt" */
        free(owned);
    }
    if (st == GM_OK) st = gm_session_generate_begin(s, job->gen, err);
    return st;
}

/* }====================================================== */

/*
** {======================================================
** Prompts and chat messages from Lua
** =======================================================
*/

/* Reads a prompt argument: nil (continue), a string, or a table of ids (left on the stack). */
void lgm_read_prompt(lua_State *L, int arg, lgm_job *job) {
    memset(job, 0, sizeof *job);
    switch (lua_type(L, arg)) {
    case LUA_TNONE:
    case LUA_TNIL: return;
    case LUA_TSTRING:
        job->text = lua_tolstring(L, arg, &job->len);
        break;
    case LUA_TTABLE:
        job->ids = lgm_check_ids(L, arg, &job->n_ids);
        break;
    default: luaL_typeerror(L, arg, "string, table of token ids or nil");
    }
    job->has_prompt = true;
}

/* Reads {{role = ..., content = ...}, ...} into a userdata array left on the stack. */
static gm_chat_message *check_messages(lua_State *L, int arg, size_t *n) {
    luaL_checktype(L, arg, LUA_TTABLE);
    arg = lua_absindex(L, arg);
    size_t count = lua_rawlen(L, arg);
    gm_chat_message *msgs = lua_newuserdatauv(L, count * sizeof *msgs + 1, 0);
    static const char *const fields[] = {"role", "content"};
    for (size_t i = 0; i < count; i++) {
        if (lua_rawgeti(L, arg, (lua_Integer)i + 1) != LUA_TTABLE)
            luaL_argerror(L, arg, lua_pushfstring(L, "messages[%d] must be a table {role = ..., content = ...}, "
                                                  "got %s", (int)i + 1, luaL_typename(L, -1)));
        for (int f = 0; f < 2; f++) {
            if (lua_getfield(L, -1, fields[f]) != LUA_TSTRING)
                luaL_argerror(L, arg, lua_pushfstring(L, "messages[%d].%s must be a string, got %s", (int)i + 1,
                                                      fields[f], luaL_typename(L, -1)));
            /* The string stays anchored by the caller's table for the duration of the call. */
            *(f ? &msgs[i].content : &msgs[i].role) = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    *n = count;
    return msgs;
}

/*
** Pushes the Gemma turn-format text of the messages at `arg`; on a core
** error (bad role order, invalid UTF-8, ...) fills `err`, pushes nothing
** and returns false.
*/
bool lgm_push_chat(lua_State *L, int arg, bool generation_prompt, bool bos, gm_error *err) {
    size_t n, len = 0, cap = 64;
    const gm_chat_message *msgs = check_messages(L, arg, &n);
    for (size_t i = 0; i < n; i++) cap += strlen(msgs[i].content) + 64;
    for (int attempt = 0;; attempt++) {
        char *buf = lua_newuserdatauv(L, cap, 0);
        gm_status st = gm_chat_format(msgs, n, generation_prompt, bos, buf, cap, &len, err);
        if (st == GM_OK && len < cap) {
            lua_pushlstring(L, buf, len);
            lua_replace(L, -3); /* drop the message array ... */
            lua_pop(L, 1);      /* ... and the buffer */
            return true;
        }
        lua_pop(L, 1);
        if ((st != GM_OK && st != GM_ERR_ARGUMENT) || len < cap || attempt > 0) {
            lua_pop(L, 1);
            return false;
        }
        cap = len + 1;
    }
}

/* gemma3n.format_chat(messages [, {generation_prompt = true, bos = true}]) -> text | nil, msg, code */
int lgm_format_chat(lua_State *L) {
    lua_settop(L, 2);
    static const char *const names[] = {"generation_prompt", "bos", NULL};
    bool flags[] = {true, true};
    lgm_read_flags(L, 2, names, flags);
    gm_error err;
    if (!lgm_push_chat(L, 1, flags[0], flags[1], &err)) return lgm_fail(L, &err);
    return 1;
}

/* }====================================================== */

/*
** {======================================================
** Iterators: for piece, id in session:generate(prompt, opts) do ... end
**
** generate returns four values: the iterator (a C closure over a
** Generation userdata), nil, nil, and the same Generation as the closing
** value, so that leaving the loop (break, error, return) closes it and
** drops its hold on the session. An iterator is tied to the session's
** `serial`: any later call that changes the context (eval, reset,
** generate, step, start, ...) makes it raise instead of interleaving.
** =======================================================
*/

typedef struct lgm_gen {
    unsigned serial; /* the session's serial when the generation began */
    bool done;       /* finished, failed or closed: the iterator returns nothing */
} lgm_gen;

/* Ends a generation and lets go of its session (user value 1). */
static void gen_release(lua_State *L, int idx, lgm_gen *g) {
    g->done = true;
    lua_pushnil(L);
    lua_setiuservalue(L, idx, 1);
}

static int gen_close(lua_State *L) {
    gen_release(L, 1, luaL_checkudata(L, 1, LGM_GENERATION));
    return 0;
}

/* One token: returns text, id (id nil when the step only flushed held-back text); nothing at the end. */
static int gen_next(lua_State *L) {
    int self = lua_upvalueindex(1);
    lgm_gen *g = lua_touserdata(L, self);
    if (g->done) return 0;
    lua_getiuservalue(L, self, 1);
    lgm_session *S = lua_touserdata(L, -1);
    if (S == NULL || S->s == NULL) return luaL_error(L, "attempt to use a closed session");
    if (S->worker) return luaL_error(L, "session is busy: a background generation is running");
    if (S->serial != g->serial)
        return luaL_error(L, "generation interrupted: the session was used by another call since it began");
    size_t before = gm_session_n_past(S->s);
    gm_step step;
    gm_error err;
    if (gm_session_next(S->s, &step, &err) != GM_OK) {
        gen_release(L, self, g);
        return luaL_error(L, "%s", err.message);
    }
    if (step.finish != GM_FINISH_NONE) gen_release(L, self, g);
    bool added = gm_session_n_past(S->s) > before; /* stop tokens are not added to the context */
    if (!added && step.text_len == 0) return 0;
    lua_pushlstring(L, step.text, step.text_len);
    if (!added) return 1;
    lua_pushinteger(L, step.token);
    return 2;
}

/* Pushes the four values of a generic for over the session at index 1. */
static int push_iterator(lua_State *L, lgm_session *S) {
    lgm_gen *g = lua_newuserdatauv(L, sizeof *g, 1);
    g->serial = S->serial;
    g->done = false;
    luaL_setmetatable(L, LGM_GENERATION);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    int gen = lua_gettop(L);
    lua_pushvalue(L, gen);
    lua_pushcclosure(L, gen_next, 1);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, gen);
    return 4;
}

/* Begins a job synchronously (raising on failure) and returns the iterator. */
static int begin_iterator(lua_State *L, lgm_session *S, lgm_job *job, int opt_arg) {
    gm_bind_params call;
    gm_error err;
    if (lgm_call_options(L, S, opt_arg, &call, &err) != GM_OK) return luaL_error(L, "%s", err.message);
    job->gen = &call.generate;
    S->serial++;
    if (lgm_job_begin(S->s, job, &err) != GM_OK) return luaL_error(L, "%s", err.message);
    return push_iterator(L, S);
}

/* session:generate([prompt] [, opts]) -> iterator, nil, nil, closing value */
int lgm_session_generate(lua_State *L) {
    lua_settop(L, 3); /* prompt and options keep their slots while the prompt pushes scratch */
    lgm_session *S = lgm_checkidle(L, 1);
    lgm_job job;
    lgm_read_prompt(L, 2, &job);
    return begin_iterator(L, S, &job, 3);
}

/*
** session:chat(messages [, opts]) -> iterator, nil, nil, closing value.
** `messages` is the whole conversation; the context keeps its common
** prefix with it, so passing the growing history each turn only
** evaluates what is new.
*/
int lgm_session_chat(lua_State *L) {
    lua_settop(L, 3);
    lgm_session *S = lgm_checkidle(L, 1);
    gm_error err;
    if (!lgm_push_chat(L, 2, true, true, &err)) return luaL_error(L, "%s", err.message);
    lgm_job job = {.has_prompt = true, .chat = true};
    job.text = lua_tolstring(L, -1, &job.len);
    return begin_iterator(L, S, &job, 3);
}

/* }====================================================== */

/*
** session:step(n [, opts]) -> ids, text, finish | nil, msg, code.
** Produces at most n tokens from the current context with the session's
** options and returns the ids added to the context, their text ("" for a
** model without tokenizer) and why it stopped: "length" (n tokens, or
** the context is full) or "stop" (a stop token, which is not returned,
** or a stop string).
*/
int lgm_session_step(lua_State *L) {
    lua_settop(L, 3);
    lgm_session *S = lgm_checkidle(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1 && n <= INT32_MAX, 2, "n must be a positive number of tokens");
    gm_bind_params call;
    gm_error err;
    if (lgm_call_options(L, S, 3, &call, &err) != GM_OK) return lgm_fail(L, &err);
    call.generate.max_tokens = (int32_t)n;
    lgm_job job = {.gen = &call.generate};
    S->serial++;
    if (lgm_job_begin(S->s, &job, &err) != GM_OK) return lgm_fail(L, &err);
    lua_createtable(L, (int)(n < 64 ? n : 64), 0);
    int ids = lua_gettop(L);
    lua_Integer count = 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    gm_step step = {.finish = GM_FINISH_NONE};
    while (step.finish == GM_FINISH_NONE) {
        size_t before = gm_session_n_past(S->s);
        if (gm_session_next(S->s, &step, &err) != GM_OK) return lgm_fail(L, &err);
        if (gm_session_n_past(S->s) > before) {
            lua_pushinteger(L, step.token);
            lua_rawseti(L, ids, ++count);
        }
        luaL_addlstring(&b, step.text, step.text_len);
    }
    luaL_pushresult(&b);
    lua_pushstring(L, lgm_finish_name(step.finish));
    return 3;
}

static const luaL_Reg gen_meta[] = {
    {"__close", gen_close},
    {NULL, NULL},
};

void lgm_open_generate(lua_State *L) { lgm_newclass(L, LGM_GENERATION, gen_meta, NULL); }
