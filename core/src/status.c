/* status.c - status names and error recording. */
#include "gm_internal.h"

#include <stdio.h>

const char *gm_status_name(gm_status status) {
    switch (status) {
    case GM_OK: return "ok";
    case GM_ERR_IO: return "io";
    case GM_ERR_FORMAT: return "format";
    case GM_ERR_UNSUPPORTED: return "unsupported";
    case GM_ERR_ARGUMENT: return "argument";
    case GM_ERR_NO_TOKENIZER: return "no_tokenizer";
    case GM_ERR_CONTEXT_OVERFLOW: return "context_overflow";
    case GM_ERR_STATE: return "state";
    case GM_ERR_OUT_OF_MEMORY: return "out_of_memory";
    case GM_ERR_CANCELLED: return "cancelled";
    case GM_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}

gm_status gm_fail(gm_error *err, gm_status status, const char *fmt, ...) {
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

void gm_error_prefix(gm_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[GM_ERROR_MESSAGE_SIZE], old[GM_ERROR_MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    size_t a = strnlen(prefix, sizeof prefix - 1), b = strnlen(old, sizeof old - 1);
    size_t cap = sizeof err->message - 1, o = 0;
    memcpy(err->message, prefix, GM_MIN(a, cap));
    o = GM_MIN(a, cap);
    if (o + 2 <= cap) { memcpy(err->message + o, ": ", 2); o += 2; }
    size_t rest = GM_MIN(b, cap - o);
    memcpy(err->message + o, old, rest);
    err->message[o + rest] = 0;
}

void gm_error_clear(gm_error *err) {
    if (!err) return;
    err->status = GM_OK;
    err->message[0] = 0;
}
