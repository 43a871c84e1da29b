/*
** lgm_session.c - the Session type (one conversation: KV cache, sampler,
** token history) and the Logits type (a compact copy of one logits row).
**
** A session is single-threaded in the core. The binding enforces it:
** while a background job runs (lgm_worker.c) every method except poll,
** wait, cancel, busy, model, close and __tostring raises "session is busy".
*/
#include "lgemma3n.h"

#include <string.h>

/*
** {======================================================
** Handles
** =======================================================
*/

lgm_session *lgm_checksession(lua_State *L, int arg) {
    lgm_session *S = luaL_checkudata(L, arg, LGM_SESSION);
    if (S->s == NULL) luaL_error(L, "attempt to use a closed session");
    return S;
}

/* An open session with no background job: the caller may touch the gm_session. */
lgm_session *lgm_checkidle(lua_State *L, int arg) {
    lgm_session *S = lgm_checksession(L, arg);
    if (S->worker != NULL)
        luaL_error(L, "session is busy: a background generation is running (poll until done, wait, or cancel)");
    return S;
}

/* model:session([opts]) -> session | nil, msg, code */
int lgm_model_session(lua_State *L) {
    lua_settop(L, 2);
    lgm_model *M = lgm_checkmodel(L, 1);
    lgm_session *S = lua_newuserdatauv(L, sizeof *S, 1);
    S->s = NULL; /* closed until gm_session_new succeeds */
    S->worker = NULL;
    S->serial = 0;
    S->sampler_custom = false;
    gm_bind_params_init(&S->defaults);
    luaL_setmetatable(L, LGM_SESSION);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the Lua model stays reachable while the session is */
    lgm_read_options(L, 2, &S->defaults,
                     LGM_G(GM_OPT_SESSION) | LGM_G(GM_OPT_SAMPLER) | LGM_G(GM_OPT_GENERATE));
    gm_error err;
    gm_session *s = NULL;
    if (gm_session_new(M->m, &S->defaults.session, &s, &err) != GM_OK) return lgm_fail(L, &err);
    S->s = s;
    return 1;
}

/* __gc, __close and session:close(): cancels and joins a running job, then frees. Idempotent. */
static int session_close(lua_State *L) {
    lgm_session *S = luaL_checkudata(L, 1, LGM_SESSION);
    if (S->worker) lgm_worker_stop(S);
    gm_session_free(S->s); /* drops the session's model reference too */
    S->s = NULL;
    return 0;
}

static int session_tostring(lua_State *L) {
    lgm_session *S = luaL_checkudata(L, 1, LGM_SESSION);
    if (S->s == NULL)
        lua_pushfstring(L, "gemma3n.Session (closed)");
    else if (S->worker)
        lua_pushfstring(L, "gemma3n.Session (busy) (%p)", (void *)S);
    else
        lua_pushfstring(L, "gemma3n.Session (%d/%d tokens) (%p)", (int)gm_session_n_past(S->s),
                        (int)gm_session_n_ctx(S->s), (void *)S);
    return 1;
}

/* }====================================================== */

/*
** {======================================================
** Options of one call
** =======================================================
*/

/*
** Makes the core sampler match a call. A call that names sampling options
** gets them (the core re-seeds its RNG when configured); a call that does
** not gets the session's defaults back if a previous call had changed
** them, and otherwise continues the session's random stream.
*/
static gm_status apply_sampler(lgm_session *S, const gm_bind_params *call, bool custom, gm_error *err) {
    if (!custom && !S->sampler_custom) return GM_OK;
    const gm_sampler_params *sp = custom ? &call->session.sampler : &S->defaults.session.sampler;
    gm_status st = gm_session_set_sampler(S->s, sp, err);
    S->sampler_custom = custom || st != GM_OK; /* on failure, restore the defaults next time */
    return st;
}

/*
** The effective options of one call: the session's defaults with the
** table at `arg` on top (sampling and generation options only; the rest
** are fixed when the session is created). Also configures the sampler.
*/
gm_status lgm_call_options(lua_State *L, lgm_session *S, int arg, gm_bind_params *call, gm_error *err) {
    gm_bind_params_copy(call, &S->defaults);
    unsigned touched = lgm_read_options(L, arg, call, LGM_PER_CALL);
    return apply_sampler(S, call, (touched & LGM_G(GM_OPT_SAMPLER)) != 0, err);
}

/* }====================================================== */

/*
** {======================================================
** Methods
** =======================================================
*/

/* session:eval(ids) -> true | nil, msg, code */
static int session_eval(lua_State *L) {
    lgm_session *S = lgm_checkidle(L, 1);
    size_t n;
    const int32_t *ids = lgm_check_ids(L, 2, &n);
    S->serial++;
    gm_error err;
    if (gm_session_eval(S->s, ids, n, &err) != GM_OK) return lgm_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* session:reset(): empty context; the sampler goes back to the session's options, re-seeded. */
static int session_reset(lua_State *L) {
    lgm_session *S = lgm_checkidle(L, 1);
    S->serial++;
    gm_session_reset(S->s);
    if (S->sampler_custom) {
        gm_error err;
        if (gm_session_set_sampler(S->s, &S->defaults.session.sampler, &err) != GM_OK) return lgm_fail(L, &err);
        S->sampler_custom = false;
    }
    return 0;
}

static int session_n_past(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)gm_session_n_past(lgm_checkidle(L, 1)->s));
    return 1;
}

static int session_n_ctx(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)gm_session_n_ctx(lgm_checkidle(L, 1)->s));
    return 1;
}

/* session:tokens() -> {ids}: the whole context. */
static int session_tokens(lua_State *L) {
    size_t n;
    const int32_t *ids = gm_session_tokens(lgm_checkidle(L, 1)->s, &n);
    lgm_push_ids(L, ids, n);
    return 1;
}

/* session:busy() -> true from start until poll or wait has reported the job done. */
static int session_busy(lua_State *L) {
    lua_pushboolean(L, lgm_checksession(L, 1)->worker != NULL);
    return 1;
}

/* session:model() -> the Model this session was created from (it may have been closed). */
static int session_model(lua_State *L) {
    lgm_checksession(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

/* }====================================================== */

/*
** {======================================================
** Logits: a copy of one row, indexed 1..vocab (logits[id + 1] is the
** logit of token id), with # and a few methods. A copy, not a view, so
** it stays valid after the session moves on; 4 bytes per entry instead
** of a Lua table's 16+ (Gemma 3n's vocabulary has 262144 entries).
** =======================================================
*/

typedef struct lgm_logits {
    lua_Integer n;
    float v[]; /* [n] */
} lgm_logits;

static lgm_logits *checklogits(lua_State *L) { return luaL_checkudata(L, 1, LGM_LOGITS); }

static void push_logits(lua_State *L, const float *row, size_t n) {
    lgm_logits *lg = lua_newuserdatauv(L, sizeof *lg + n * sizeof(float), 0);
    lg->n = (lua_Integer)n;
    memcpy(lg->v, row, n * sizeof(float));
    luaL_setmetatable(L, LGM_LOGITS);
}

/* logits[i] for integers 1..n; any other key looks up the methods table (upvalue 1). */
static int logits_index(lua_State *L) {
    lgm_logits *lg = checklogits(L);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        int isint;
        lua_Integer i = lua_tointegerx(L, 2, &isint);
        if (isint && i >= 1 && i <= lg->n)
            lua_pushnumber(L, lg->v[i - 1]);
        else
            lua_pushnil(L);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

static int logits_len(lua_State *L) {
    lua_pushinteger(L, checklogits(L)->n);
    return 1;
}

static int logits_tostring(lua_State *L) {
    lua_pushfstring(L, "gemma3n.Logits (%I entries) (%p)", checklogits(L)->n, lua_touserdata(L, 1));
    return 1;
}

/* logits:argmax() -> token id (0-based, = index - 1), its logit. Ties go to the lowest id. */
static int logits_argmax(lua_State *L) {
    lgm_logits *lg = checklogits(L);
    lua_Integer best = 0;
    for (lua_Integer i = 1; i < lg->n; i++)
        if (lg->v[i] > lg->v[best]) best = i;
    lua_pushinteger(L, best);
    lua_pushnumber(L, lg->n ? lg->v[best] : 0);
    return 2;
}

/* logits:totable() -> a plain Lua sequence of the n values. */
static int logits_totable(lua_State *L) {
    lgm_logits *lg = checklogits(L);
    lua_createtable(L, (int)lg->n, 0);
    for (lua_Integer i = 0; i < lg->n; i++) {
        lua_pushnumber(L, lg->v[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/*
** session:logits([row]) -> Logits | nil, msg, code. Without `row`: the
** last evaluated position. With `row` (sessions made with logits_all =
** true): row 1..n of the last eval call.
*/
static int session_logits(lua_State *L) {
    lgm_session *S = lgm_checkidle(L, 1);
    size_t V = (size_t)lgm_vocab_size(gm_session_model(S->s));
    if (lua_isnoneornil(L, 2)) {
        const float *row = gm_session_logits(S->s);
        if (!row) return lgm_fail_status(L, GM_ERR_STATE, "no logits: evaluate a prompt first");
        push_logits(L, row, V);
        return 1;
    }
    lua_Integer i = luaL_checkinteger(L, 2);
    size_t rows;
    const float *all = gm_session_all_logits(S->s, &rows);
    if (!all)
        return lgm_fail_status(L, GM_ERR_STATE, "no per-position logits: create the session with "
                                                "logits_all = true and evaluate a prompt");
    luaL_argcheck(L, i >= 1 && (size_t)i <= rows, 2, lua_pushfstring(L, "row must be in [1, %d]", (int)rows));
    push_logits(L, all + (size_t)(i - 1) * V, V);
    return 1;
}

/* }====================================================== */

static const luaL_Reg session_meta[] = {
    {"__gc", session_close},
    {"__close", session_close},
    {"__tostring", session_tostring},
    {NULL, NULL},
};

static const luaL_Reg session_methods[] = {
    {"eval", session_eval},
    {"logits", session_logits},
    {"reset", session_reset},
    {"n_past", session_n_past},
    {"n_ctx", session_n_ctx},
    {"tokens", session_tokens},
    {"generate", lgm_session_generate},
    {"chat", lgm_session_chat},
    {"step", lgm_session_step},
    {"start", lgm_session_start},
    {"start_chat", lgm_session_start_chat},
    {"poll", lgm_session_poll},
    {"wait", lgm_session_wait},
    {"cancel", lgm_session_cancel},
    {"busy", session_busy},
    {"model", session_model},
    {"close", session_close},
    {NULL, NULL},
};

static const luaL_Reg logits_meta[] = {
    {"__len", logits_len},
    {"__tostring", logits_tostring},
    {NULL, NULL},
};

static const luaL_Reg logits_methods[] = {
    {"argmax", logits_argmax},
    {"totable", logits_totable},
    {NULL, NULL},
};

void lgm_open_session(lua_State *L) {
    lgm_newclass(L, LGM_SESSION, session_meta, session_methods);
    lgm_newclass(L, LGM_LOGITS, logits_meta, NULL);
    luaL_getmetatable(L, LGM_LOGITS);
    lua_newtable(L);
    luaL_setfuncs(L, logits_methods, 0);
    lua_pushcclosure(L, logits_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
