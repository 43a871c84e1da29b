/*
 * sampler.h - picks the next token from a row of logits.
 *
 * The chain follows llama.cpp / llama-cpp-python (logit bias, penalties,
 * top_k, top_p, min_p, temp, dist), so Python users comparing with them see
 * the same candidate sets; the random draws differ (different PRNG).
 *
 *  1. logit bias: every entry's bias is added to its token's logit (entries
 *     for the same token add up); -INFINITY bans the token.
 *  2. repetition penalty (CTRL / llama.cpp): every distinct token among the
 *     last repeat_last_n tokens of `history` (-1 = all of it, 0 = none) is
 *     penalised once: logit > 0 -> logit / penalty, else logit * penalty.
 *     History ids outside [0, n_vocab) are ignored.
 *  3. temperature <= 0: greedy. The argmax; ties go to the lowest id.
 *  Otherwise candidates are the tokens in the order (logit descending, id
 *  ascending); tokens whose logit is -INFINITY (or NaN) are never
 *  candidates, and +INFINITY is read as FLT_MAX.
 *  4. top_k > 0 (and < n_vocab): keep the first top_k.
 *  5. top_p < 1: probabilities softmax(logits) at temperature 1 over the
 *     candidates left; keep the shortest prefix whose cumulative probability
 *     is >= top_p (always at least one token). Sums are in double.
 *  6. min_p > 0: keep the tokens with logit >= max_logit + logf(min_p),
 *     i.e. p >= min_p * p_max at temperature 1 (llama.cpp's form).
 *  7. softmax((logit - max_logit) / temperature) over what is left, and one
 *     draw from xoshiro256** (seeded by splitmix64(seed)). Every non-greedy
 *     call consumes exactly one draw, so the stream stays aligned whatever
 *     the candidate count.
 *
 * Cost per call over a vocabulary of n (262144 for Gemma 3n): one copy of
 * the logits and one vectorisable pass for the max (which also detects
 * NaN / +inf; only then a second, sanitising pass runs), then
 *   - greedy: a scan for the first id holding the max;
 *   - top_k on: a size-k min-heap over one pass (O(n) for typical logits,
 *     O(n log k) worst case), then a sort of k entries;
 *   - top_k off, top_p on: one pass computes exp(l - max), the partition
 *     sum Z and a histogram of probability mass over 32 buckets per logit
 *     unit of (max - l) (monotone in l, so each bucket is a contiguous run
 *     of the candidate order). Walking the histogram from the top finds the one
 *     bucket b where the cumulative mass crosses top_p * Z: every token in
 *     buckets before b is in the nucleus, every token after b is out, and
 *     only bucket b's tokens are sorted to find the exact cut. Nothing that
 *     could be in the nucleus is dropped, so the result is exact, not an
 *     approximation (should double rounding make the sorted scan miss the
 *     target, all of bucket b is kept);
 *   - otherwise (min_p and/or temperature only): one filtering pass.
 * All scratch is allocated by gm_sampler_new; gm_sampler_sample never
 * allocates. A sampler is used by one thread at a time.
 */
#ifndef GM_SAMPLER_H
#define GM_SAMPLER_H

#include "gm_internal.h"

typedef struct gm_sampler gm_sampler;

/*
 * Allocates all scratch for a vocabulary of n_vocab once and validates the
 * params (see gm_sampler_configure). *out is NULL on failure.
 */
GM_INTERNAL gm_status gm_sampler_new(int32_t n_vocab, const gm_sampler_params *p,
                                     gm_sampler **out, gm_error *err);

/* Frees the sampler; NULL is a no-op. */
GM_INTERNAL void gm_sampler_free(gm_sampler *s);

/*
 * Validates and replaces the params (copies logit_bias); re-seeds the RNG.
 * On error nothing changes. GM_ERR_ARGUMENT for: temperature NaN or
 * infinite; top_p NaN or < 0; min_p NaN or > 1; repeat_penalty not finite
 * or <= 0; repeat_last_n < -1; a logit_bias token outside [0, n_vocab) or
 * a bias that is NaN or +INFINITY; n_logit_bias > 0 with a NULL array.
 * (top_k <= 0, top_p >= 1, min_p <= 0 and repeat_penalty == 1 mean "off".)
 */
GM_INTERNAL gm_status gm_sampler_configure(gm_sampler *s, const gm_sampler_params *p,
                                           gm_error *err);

/* Re-seeds the RNG from params.seed (a fresh conversation gets the same draws). */
GM_INTERNAL void gm_sampler_reset(gm_sampler *s);

/*
 * Picks the next token. `logits` [n_vocab] is not modified; `history`
 * (n_history ids, may be NULL when n_history == 0) is the context so far,
 * for the repetition penalty. No allocation. Returns -1 only when no token
 * can be picked: every logit is -INFINITY or NaN after the bias (e.g. all
 * banned); the caller turns that into an error.
 */
GM_INTERNAL int32_t gm_sampler_sample(gm_sampler *s, const float *logits,
                                      const int32_t *history, size_t n_history);

#endif /* GM_SAMPLER_H */
