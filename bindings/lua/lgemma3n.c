/*
** lgemma3n.c - the `gemma3n` Lua 5.4 module: module functions, the Model
** type, the error triple, option tables and token-id tables.
**
**   local gemma3n = require "gemma3n"
**   local model <close> = assert(gemma3n.load("path/to/model", {n_threads = 4}))
**   local s <close> = model:session{n_ctx = 1024, temperature = 0}
**   for piece in s:generate("Hello", {max_tokens = 32}) do io.write(piece) end
**
** See lua/README.md for the whole API and the choices behind it.
*/
#include "lgemma3n.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

/*
** {======================================================
** Errors
** =======================================================
*/

/* Pushes the expected-failure triple `nil, message, code` (luv, liolib). */
int lgm_fail(lua_State *L, const gm_error *err) {
    luaL_pushfail(L);
    lua_pushstring(L, err->message);
    lua_pushstring(L, gm_status_name(err->status));
    return 3;
}

/* Same triple for a failure the binding itself detects. */
int lgm_fail_status(lua_State *L, gm_status st, const char *msg) {
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, gm_status_name(st));
    return 3;
}

/* }====================================================== */

/*
** {======================================================
** Options
** =======================================================
*/

/* Pushes "a, b, c": the options a call with these groups accepts. */
static void push_valid_names(lua_State *L, unsigned groups) {
    size_t n;
    const gm_bind_option *all = gm_bind_options(&n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!(groups & LGM_G(all[i].group))) continue;
        if (!first) luaL_addstring(&b, ", ");
        luaL_addstring(&b, all[i].name);
        first = false;
    }
    luaL_pushresult(&b);
}

/* The option named by the key at the top - 1 of the stack; raises unless `groups` accept it. */
static const gm_bind_option *check_option_name(lua_State *L, int arg, unsigned groups) {
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_argerror(L, arg, lua_pushfstring(L, "option names must be strings, got a %s key",
                                              luaL_typename(L, -2)));
    const char *name = lua_tostring(L, -2);
    const gm_bind_option *o = gm_bind_find_option(name);
    if (o && (groups & LGM_G(o->group))) return o;
    push_valid_names(L, groups);
    luaL_argerror(L, arg, lua_pushfstring(L, o ? "option '%s' cannot be set here (valid: %s)"
                                               : "unknown option '%s' (valid: %s)",
                                          name, lua_tostring(L, -1)));
    return NULL;
}

/* stop = "str" or {"str", ...}: value at the top of the stack. */
static void set_stop(lua_State *L, int arg, gm_bind_params *p, const gm_bind_option *o) {
    const char *strs[GM_MAX_STOP_STRINGS];
    size_t lens[GM_MAX_STOP_STRINGS], n = 1;
    char msg[256];
    if (lua_type(L, -1) == LUA_TSTRING) {
        strs[0] = lua_tolstring(L, -1, &lens[0]);
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        n = lua_rawlen(L, -1);
        for (size_t i = 0; i < n && i < GM_MAX_STOP_STRINGS; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d] must be a string, got %s", o->name,
                                                      (int)i + 1, luaL_typename(L, -1)));
            strs[i] = lua_tolstring(L, -1, &lens[i]); /* still anchored in the table */
            lua_pop(L, 1);
        }
    } else {
        luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a string or a list of strings, got %s",
                                              o->name, luaL_typename(L, -1)));
    }
    /* gm_bind_set_stop checks n before reading the arrays, so n > GM_MAX_STOP_STRINGS is safe. */
    if (!gm_bind_set_stop(p, strs, lens, n, msg, sizeof msg)) luaL_argerror(L, arg, msg);
}

/* logit_bias = {[token_id] = bias, ...}: value at the top of the stack. */
static void set_bias(lua_State *L, int arg, gm_bind_params *p, const gm_bind_option *o) {
    char msg[256];
    if (lua_type(L, -1) != LUA_TTABLE)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a table {[token_id] = bias}, got %s", o->name,
                                              luaL_typename(L, -1)));
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) n++;
    if (n > GM_BIND_MAX_BIAS) { /* let the shared layer word the message */
        gm_bind_set_logit_bias(p, NULL, NULL, n, msg, sizeof msg);
        luaL_argerror(L, arg, msg);
    }
    int32_t *tok = lua_newuserdatauv(L, n * sizeof(int32_t) + n * sizeof(float) + 1, 0);
    float *bias = (float *)(tok + n);
    size_t i = 0;
    for (lua_pushnil(L); lua_next(L, -3); lua_pop(L, 1), i++) {
        int isint = 0;
        lua_Integer id = lua_type(L, -2) == LUA_TNUMBER ? lua_tointegerx(L, -2, &isint) : 0;
        if (!isint || id < INT32_MIN || id > INT32_MAX)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s keys must be token ids (integers)", o->name));
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d] must be a number, got %s", o->name, (int)id,
                                                  luaL_typename(L, -1)));
        tok[i] = (int32_t)id;
        bias[i] = (float)lua_tonumber(L, -1);
    }
    if (!gm_bind_set_logit_bias(p, tok, bias, n, msg, sizeof msg)) luaL_argerror(L, arg, msg);
    lua_pop(L, 1); /* the scratch userdata; set_logit_bias copied the entries */
}

/* The value at the top of the stack for option `o`. */
static void set_option(lua_State *L, int arg, gm_bind_params *p, const gm_bind_option *o) {
    char msg[256];
    double v = 0;
    switch (o->type) {
    case GM_OPT_STOP: set_stop(L, arg, p, o); return;
    case GM_OPT_BIAS: set_bias(L, arg, p, o); return;
    case GM_OPT_STRING:
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a string, got %s", o->name, luaL_typename(L, -1)));
        if (!gm_bind_set_string(p, o, lua_tostring(L, -1), msg, sizeof msg)) luaL_argerror(L, arg, msg);
        return;
    case GM_OPT_BOOL:
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a boolean, got %s", o->name,
                                                  luaL_typename(L, -1)));
        v = lua_toboolean(L, -1);
        break;
    default:
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a number, got %s", o->name,
                                                  luaL_typename(L, -1)));
        v = (double)lua_tonumber(L, -1);
        break;
    }
    if (!gm_bind_set_number(p, o, v, msg, sizeof msg)) luaL_argerror(L, arg, msg);
    /* Seeds above 2^53 do not survive the trip through a double: keep the integer exactly. */
    if (o->type == GM_OPT_SEED && lua_isinteger(L, -1)) gm_bind_set_seed(p, (uint64_t)lua_tointeger(L, -1));
}

/*
** Reads the option table at `arg` (nil or absent: no options) into `p`,
** accepting the options of `groups` only. Names and values are checked by
** the shared table (gm_bind.h); a wrong one raises an argument error that
** lists the valid names. Returns the mask of the groups it touched.
*/
unsigned lgm_read_options(lua_State *L, int arg, gm_bind_params *p, unsigned groups) {
    if (lua_isnoneornil(L, arg)) return 0;
    luaL_checktype(L, arg, LUA_TTABLE);
    arg = lua_absindex(L, arg);
    unsigned touched = 0;
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        const gm_bind_option *o = check_option_name(L, arg, groups);
        set_option(L, arg, p, o);
        touched |= LGM_G(o->group);
        lua_pop(L, 1);
    }
    return touched;
}

/*
** A table of boolean flags (tokenize's bos/special, ...): names[] is
** NULL-terminated; values[] holds the defaults and receives the result.
*/
void lgm_read_flags(lua_State *L, int arg, const char *const *names, bool *values) {
    if (lua_isnoneornil(L, arg)) return;
    luaL_checktype(L, arg, LUA_TTABLE);
    arg = lua_absindex(L, arg);
    for (lua_pushnil(L); lua_next(L, arg); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "option names must be strings, got a %s key",
                                                  luaL_typename(L, -2)));
        const char *key = lua_tostring(L, -2);
        int i = 0;
        while (names[i] && strcmp(names[i], key) != 0) i++;
        if (!names[i]) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int k = 0; names[k]; k++) {
                if (k) luaL_addstring(&b, ", ");
                luaL_addstring(&b, names[k]);
            }
            luaL_pushresult(&b);
            luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s' (valid: %s)", key, lua_tostring(L, -1)));
        }
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a boolean, got %s", key, luaL_typename(L, -1)));
        values[i] = lua_toboolean(L, -1);
    }
}

/* }====================================================== */

/*
** {======================================================
** Token ids
** =======================================================
*/

/*
** Copies the sequence of integers at `arg` into a new userdata left on the
** top of the stack (the GC frees it, even if a later check raises). Each
** id must be an integer that fits int32; ranges against the vocabulary
** are the core's to check.
*/
int32_t *lgm_check_ids(lua_State *L, int arg, size_t *n) {
    luaL_checktype(L, arg, LUA_TTABLE);
    arg = lua_absindex(L, arg);
    size_t count = lua_rawlen(L, arg);
    int32_t *ids = lua_newuserdatauv(L, count * sizeof *ids + 1, 0);
    for (size_t i = 0; i < count; i++) {
        int isint = 0;
        lua_rawgeti(L, arg, (lua_Integer)i + 1);
        lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
        if (!isint)
            luaL_argerror(L, arg, lua_pushfstring(L, "ids[%d] must be an integer, got %s", (int)i + 1,
                                                  luaL_typename(L, -1)));
        if (v < INT32_MIN || v > INT32_MAX)
            luaL_argerror(L, arg, lua_pushfstring(L, "ids[%d] = %I is not a token id", (int)i + 1, v));
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    *n = count;
    return ids;
}

/* Pushes a Lua sequence {id, ...}. */
void lgm_push_ids(lua_State *L, const int32_t *ids, size_t n) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushinteger(L, ids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

int32_t lgm_vocab_size(const gm_model *m) {
    gm_model_info info;
    gm_model_get_info(m, &info);
    return info.vocab_size;
}

/* }====================================================== */

/*
** {======================================================
** Model
** =======================================================
*/

lgm_model *lgm_checkmodel(lua_State *L, int arg) {
    lgm_model *M = luaL_checkudata(L, arg, LGM_MODEL);
    if (M->m == NULL) luaL_error(L, "attempt to use a closed model");
    return M;
}

/* gemma3n.load(path [, opts]) -> model | nil, msg, code */
static int l_load(lua_State *L) {
    lua_settop(L, 2); /* fixed argument slots before anything is pushed */
    const char *path = luaL_checkstring(L, 1);
    gm_bind_params p;
    gm_bind_params_init(&p);
    lgm_read_options(L, 2, &p, LGM_G(GM_OPT_MODEL));
    /* As liolib does: create the handle closed, then open, so a memory error leaves nothing behind. */
    lgm_model *M = lua_newuserdatauv(L, sizeof *M, 0);
    M->m = NULL;
    luaL_setmetatable(L, LGM_MODEL);
    gm_error err;
    gm_model *m = NULL;
    if (gm_model_open(path, &p.model, &m, &err) != GM_OK) return lgm_fail(L, &err);
    M->m = m;
    return 1;
}

/* __gc, __close and model:close(): drops our reference; live sessions keep the weights. */
static int model_close(lua_State *L) {
    lgm_model *M = luaL_checkudata(L, 1, LGM_MODEL);
    gm_model_free(M->m);
    M->m = NULL;
    return 0;
}

static int model_tostring(lua_State *L) {
    lgm_model *M = luaL_checkudata(L, 1, LGM_MODEL);
    if (M->m == NULL) {
        lua_pushliteral(L, "gemma3n.Model (closed)");
    } else {
        gm_model_info info;
        gm_model_get_info(M->m, &info);
        lua_pushfstring(L, "gemma3n.Model (%d layers, vocab %d%s) (%p)", (int)info.num_layers,
                        (int)info.vocab_size, gm_model_tokenizer(M->m) ? "" : ", no tokenizer", (void *)M);
    }
    return 1;
}

/* model:tokenize(text [, {bos = true, special = false}]) -> {ids} | nil, msg, code */
static int model_tokenize(lua_State *L) {
    lua_settop(L, 3);
    lgm_model *M = lgm_checkmodel(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    static const char *const names[] = {"bos", "special", NULL};
    bool flags[] = {true, false};
    lgm_read_flags(L, 3, names, flags);
    unsigned f = (flags[0] ? GM_TOKENIZE_ADD_BOS : 0) | (flags[1] ? GM_TOKENIZE_PARSE_SPECIAL : 0);
    /* A byte becomes at most one token; retry once if the tokenizer disagrees. */
    size_t cap = len + 2, n = 0;
    gm_error err;
    for (int attempt = 0;; attempt++) {
        int32_t *ids = lua_newuserdatauv(L, cap * sizeof *ids, 0);
        gm_status st = gm_model_tokenize(M->m, text, len, f, ids, cap, &n, &err);
        if (st == GM_OK) {
            lgm_push_ids(L, ids, n);
            return 1;
        }
        if (st != GM_ERR_ARGUMENT || n <= cap || attempt > 0) return lgm_fail(L, &err);
        cap = n;
        lua_pop(L, 1);
    }
}

/* model:detokenize(ids [, {skip_special = false}]) -> text | nil, msg, code */
static int model_detokenize(lua_State *L) {
    lua_settop(L, 3);
    lgm_model *M = lgm_checkmodel(L, 1);
    size_t n;
    const int32_t *ids = lgm_check_ids(L, 2, &n);
    static const char *const names[] = {"skip_special", NULL};
    bool skip[] = {false};
    lgm_read_flags(L, 3, names, skip);
    size_t cap = n * 8 + 16, len = 0;
    gm_error err;
    for (int attempt = 0;; attempt++) {
        char *buf = lua_newuserdatauv(L, cap, 0);
        gm_status st = gm_model_detokenize(M->m, ids, n, skip[0], buf, cap, &len, &err);
        if (st == GM_OK && len < cap) {
            lua_pushlstring(L, buf, len);
            return 1;
        }
        if ((st != GM_OK && st != GM_ERR_ARGUMENT) || len < cap || attempt > 0) return lgm_fail(L, &err);
        cap = len + 1;
        lua_pop(L, 1);
    }
}

/* model:info() -> table of gm_model_info fields */
static int model_info(lua_State *L) {
    lgm_model *M = lgm_checkmodel(L, 1);
    gm_model_info info;
    gm_model_get_info(M->m, &info);
    lua_createtable(L, 0, 20);
#define INT_FIELD(f) (lua_pushinteger(L, (lua_Integer)info.f), lua_setfield(L, -2, #f))
    INT_FIELD(vocab_size);
    INT_FIELD(hidden_size);
    INT_FIELD(num_layers);
    INT_FIELD(num_heads);
    INT_FIELD(num_kv_heads);
    INT_FIELD(head_dim);
    INT_FIELD(num_kv_shared_layers);
    INT_FIELD(sliding_window);
    INT_FIELD(hidden_size_per_layer_input);
    INT_FIELD(altup_num_inputs);
    INT_FIELD(laurel_rank);
    INT_FIELD(bos_id);
    INT_FIELD(eos_id);
    INT_FIELD(end_of_turn_id);
    INT_FIELD(max_position_embeddings);
    INT_FIELD(n_params_text);
    INT_FIELD(n_params_file);
#undef INT_FIELD
    lua_pushnumber(L, info.final_logit_softcap);
    lua_setfield(L, -2, "final_logit_softcap");
    lua_pushstring(L, info.weight_dtype ? info.weight_dtype : "");
    lua_setfield(L, -2, "weight_dtype");
    lua_pushboolean(L, gm_model_tokenizer(M->m) != NULL);
    lua_setfield(L, -2, "has_tokenizer");
    return 1;
}

/*
** model:select_submodel(name_or_spec) -> true | nil, msg, code
** name_or_spec: a table row name, an alias ("E2B"), "full", a .json path,
** or a table {layers_to_skip = {...}, ffn_hidden_dims = {...}} (0-based
** layer indices, as the JSON form). New sessions use it; existing ones keep theirs.
*/
static void read_int_list(lua_State *L, int arg, const char *field, int32_t *out, int32_t *n) {
    *n = 0;
    if (lua_getfield(L, arg, field) == LUA_TTABLE) {
        lua_Integer len = luaL_len(L, -1);
        luaL_argcheck(L, len <= GM_MAX_SUBMODEL_LAYERS, arg, "too many entries");
        for (lua_Integer i = 1; i <= len; i++) {
            lua_geti(L, -1, i);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint || v < 0 || v > INT32_MAX)
                luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d] must be a non-negative integer", field, (int)i));
            out[(*n)++] = (int32_t)v;
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a list of integers", field));
    }
    lua_pop(L, 1);
}

static int model_select_submodel(lua_State *L) {
    lgm_model *M = lgm_checkmodel(L, 1);
    gm_submodel_spec spec;
    gm_error err;
    if (lua_type(L, 2) == LUA_TTABLE) {
        memset(&spec, 0, sizeof spec);
        read_int_list(L, 2, "layers_to_skip", spec.layers_to_skip, &spec.n_layers_to_skip);
        read_int_list(L, 2, "ffn_hidden_dims", spec.ffn_hidden_dims, &spec.n_ffn_hidden_dims);
    } else if (gm_submodel_resolve(luaL_checkstring(L, 2), &spec, &err) != GM_OK) {
        return lgm_fail(L, &err);
    }
    if (gm_model_select_submodel(M->m, &spec, &err) != GM_OK) return lgm_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* model:submodels() -> {{name=, alias=, layers=, effective_params=, table_params_b=, mmlu=}, ...} */
static int model_submodels(lua_State *L) {
    lgm_model *M = lgm_checkmodel(L, 1);
    size_t n = gm_submodel_count();
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        gm_submodel_entry e;
        gm_submodel_spec spec;
        int64_t params = -1;
        gm_submodel_get(i, &e, &spec, NULL);
        bool valid = gm_model_check_submodel(M->m, &spec, &params, NULL) == GM_OK;
        lua_createtable(L, 0, 7);
        lua_pushstring(L, e.name), lua_setfield(L, -2, "name");
        lua_pushstring(L, e.alias), lua_setfield(L, -2, "alias");
        lua_pushinteger(L, e.num_layers), lua_setfield(L, -2, "layers");
        lua_pushnumber(L, e.effective_params_b), lua_setfield(L, -2, "table_params_b");
        lua_pushstring(L, e.mmlu), lua_setfield(L, -2, "mmlu");
        lua_pushboolean(L, valid), lua_setfield(L, -2, "valid");
        if (valid) lua_pushinteger(L, params), lua_setfield(L, -2, "effective_params");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* }====================================================== */

/*
** {======================================================
** Module functions
** =======================================================
*/

/* gemma3n.now() -> monotonic seconds (for frame timing; os.clock is CPU time). */
static int l_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

/* gemma3n.sleep(seconds): a convenience for examples and tests (hosts have their own). */
static int l_sleep(lua_State *L) {
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s < 1e9, 1, "seconds must be in [0, 1e9)");
    long ns = (long)((s - floor(s)) * 1e9);
    struct timespec ts = {(time_t)s, ns > 999999999 ? 999999999 : ns};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

/* gemma3n.options() -> {name = "doc", ...}: every option name of the shared table. */
static int l_options(lua_State *L) {
    size_t n;
    const gm_bind_option *all = gm_bind_options(&n);
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, all[i].doc);
        lua_setfield(L, -2, all[i].name);
    }
    return 1;
}

/* Creates the metatable `name` with metamethods `meta` and methods table `methods` as __index. */
void lgm_newclass(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

static const luaL_Reg model_meta[] = {
    {"__gc", model_close},
    {"__close", model_close},
    {"__tostring", model_tostring},
    {NULL, NULL},
};

static const luaL_Reg model_methods[] = {
    {"session", lgm_model_session},
    {"tokenize", model_tokenize},
    {"detokenize", model_detokenize},
    {"info", model_info},
    {"select_submodel", model_select_submodel},
    {"submodels", model_submodels},
    {"close", model_close},
    {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"load", l_load},
    {"format_chat", lgm_format_chat},
    {"now", l_now},
    {"sleep", l_sleep},
    {"options", l_options},
    {NULL, NULL},
};

int luaopen_gemma3n(lua_State *L) {
    luaL_checkversion(L);
    lgm_newclass(L, LGM_MODEL, model_meta, model_methods);
    lgm_open_session(L);
    lgm_open_generate(L);
    luaL_newlib(L, funcs);
    lua_pushliteral(L, GEMMA3N_VERSION_STRING);
    lua_setfield(L, -2, "version");
    return 1;
}

/* }====================================================== */
