/*
 * gm_bind.h - what the Python and Lua bindings share, so neither
 * re-implements policy: the option table (keyword names -> fields of the
 * core's parameter structs, with types and ranges), the status -> error
 * family mapping, and a busy guard for single-threaded sessions.
 *
 * Option names are llama-cpp-python's keyword names (temperature, top_k,
 * top_p, min_p, repeat_penalty, seed, max_tokens, stop, ignore_eos, n_ctx,
 * n_threads): the names Python and Lua users already know.
 */
#ifndef GM_BIND_H
#define GM_BIND_H

#include "gemma3n.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum gm_opt_type {
    GM_OPT_INT,     /* int32_t */
    GM_OPT_FLOAT,   /* float */
    GM_OPT_BOOL,    /* int32_t 0/1 */
    GM_OPT_SEED,    /* uint64_t */
    GM_OPT_STOP,    /* a string or a list of strings: binding-specific, stored via gm_bind_set_stop */
    GM_OPT_BIAS,    /* {token: bias}: binding-specific, stored via gm_bind_set_logit_bias */
    GM_OPT_STRING   /* a name, parsed by gm_bind_set_string (weights, submodel) */
} gm_opt_type;

typedef enum gm_opt_group { GM_OPT_MODEL, GM_OPT_SESSION, GM_OPT_SAMPLER, GM_OPT_GENERATE } gm_opt_group;

typedef struct gm_bind_option {
    const char *name;
    gm_opt_type type;
    gm_opt_group group;
    size_t offset;        /* inside the group's struct */
    double min, max;      /* accepted range (inclusive) for numbers */
    const char *doc;
} gm_bind_option;

#define GM_BIND_MAX_BIAS 1024

/* Every parameter a binding call can set, with owned storage for lists. */
typedef struct gm_bind_params {
    gm_model_params model;
    gm_session_params session;   /* .sampler inside */
    gm_generate_params generate;
    char stop_storage[GM_MAX_STOP_STRINGS][256];
    gm_logit_bias bias_storage[GM_BIND_MAX_BIAS];
    gm_submodel_spec submodel_storage; /* session.submodel points here when set */
} gm_bind_params;

/* Defaults of every group (the core's *_default_params). */
void gm_bind_params_init(gm_bind_params *p);

/* Copies src into dst, re-pointing stop strings and logit_bias at dst's own storage. */
void gm_bind_params_copy(gm_bind_params *dst, const gm_bind_params *src);

/* The option called `name`, or NULL. */
const gm_bind_option *gm_bind_find_option(const char *name);

/* All options, for documentation and "unknown option; valid: ..." messages. */
const gm_bind_option *gm_bind_options(size_t *count);

/*
 * Sets a numeric/bool option. Returns true, or false with a message in
 * `msg` naming the option and its valid range (for TypeError/ValueError or
 * luaL_argerror).
 */
bool gm_bind_set_number(gm_bind_params *p, const gm_bind_option *o, double value, char *msg, size_t cap);

/* Sets a seed exactly (numbers above 2^53 cannot go through gm_bind_set_number's double). */
void gm_bind_set_seed(gm_bind_params *p, uint64_t seed);

/*
 * Sets a GM_OPT_STRING option: "weights" (stored, f32, f16, bf16, q8_0,
 * q4_0), "submodel" (a MatFormer table name/alias, "full", or a .json
 * path) or "kv_type" (f32, f16). False with a message naming the option and the problem.
 */
bool gm_bind_set_string(gm_bind_params *p, const gm_bind_option *o, const char *value, char *msg, size_t cap);

/* Replaces the stop strings (n <= GM_MAX_STOP_STRINGS, each < 256 bytes, non-empty). */
bool gm_bind_set_stop(gm_bind_params *p, const char *const *stop, const size_t *lens, size_t n, char *msg,
                      size_t cap);

/* Replaces the logit bias list (n <= GM_BIND_MAX_BIAS). Token ranges are checked by the core. */
bool gm_bind_set_logit_bias(gm_bind_params *p, const int32_t *tokens, const float *bias, size_t n, char *msg,
                            size_t cap);

/* Error families for exceptions: "ModelFormatError", "IOError", "ArgumentError", "ContextOverflowError", ... */
typedef enum gm_error_family {
    GM_FAMILY_FORMAT,   /* GM_ERR_FORMAT, GM_ERR_UNSUPPORTED */
    GM_FAMILY_IO,       /* GM_ERR_IO */
    GM_FAMILY_ARGUMENT, /* GM_ERR_ARGUMENT */
    GM_FAMILY_CONTEXT,  /* GM_ERR_CONTEXT_OVERFLOW */
    GM_FAMILY_STATE,    /* GM_ERR_STATE, GM_ERR_NO_TOKENIZER */
    GM_FAMILY_MEMORY,   /* GM_ERR_OUT_OF_MEMORY */
    GM_FAMILY_CANCELLED,/* GM_ERR_CANCELLED */
    GM_FAMILY_INTERNAL  /* anything else */
} gm_error_family;

gm_error_family gm_bind_error_family(gm_status st);

/* Busy guard: a second thread entering a busy session gets an error instead of a data race. */
static inline bool gm_bind_try_enter(atomic_flag *busy) { return !atomic_flag_test_and_set(busy); }
static inline void gm_bind_leave(atomic_flag *busy) { atomic_flag_clear(busy); }

#endif
