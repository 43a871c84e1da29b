"""Log-likelihood scoring for evaluation harnesses (lm-eval-harness's
`loglikelihood`, MMLU-style multiple choice).

The arithmetic is in C (Session.continuation_logprobs: log-softmax over the
logits of the positions that predict each continuation token, in double).
This module prepares the token lists the way lm-eval's Hugging Face model
does, and orders the work so a context shared by several continuations is
evaluated once: requests are sorted by context tokens, each context reuses
the longest common prefix already in the session's KV cache
(Session.truncate), and continuation_logprobs leaves the context in place.
"""
from typing import List, Sequence, Tuple, Union

from . import _gemma3n

__all__ = ["prime", "encode_pair", "score_pairs"]

Tokens = Union[str, Sequence[int]]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prime(session: "_gemma3n.Session", tokens: Sequence[int]) -> None:
    """Makes the session's context equal `tokens` (with their logits ready),
    evaluating only what differs from what the context already holds."""
    tokens = list(tokens)
    if not tokens:
        raise _gemma3n.ArgumentError("the prompt is empty (no tokens to evaluate)")
    have = session.tokens
    n = _common_prefix(have, tokens)
    if n == len(tokens):
        if session.n_past != n:
            session.truncate(n)  # logits become those of position n - 1
        if session.logits is not None:
            return
        n -= 1  # no logits yet (nothing was evaluated): re-run the last token
    if n < session.n_past:
        session.truncate(n)
    session.eval(tokens[n:])


def encode_pair(model: "_gemma3n.Model", context: Tokens,
                continuation: Tokens) -> Tuple[List[int], List[int]]:
    """(context ids, continuation ids).

    Token lists are taken as they are. Strings follow lm-eval's HF model:
    trailing spaces of the context move to the continuation, the pair is
    tokenized as one text (with <bos>) and split after the context's tokens,
    so the continuation's first token is the one the model would really see.
    """
    if isinstance(context, (str, bytes)) != isinstance(continuation, (str, bytes)):
        raise TypeError("context and continuation must both be text or both be token lists")
    if not isinstance(context, (str, bytes)):
        ctx, cont = list(context), list(continuation)
    else:
        if isinstance(context, bytes) or isinstance(continuation, bytes):
            context, continuation = _text(context), _text(continuation)
        n_spaces = len(context) - len(context.rstrip(" "))
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = model.tokenize(context + continuation, add_bos=True)
        n_ctx = len(model.tokenize(context, add_bos=True))
        ctx, cont = whole[:n_ctx], whole[n_ctx:]
    if not ctx:
        raise _gemma3n.ArgumentError("the context is empty: give at least <bos>")
    if not cont:
        raise _gemma3n.ArgumentError("the continuation is empty")
    return ctx, cont


def _text(s: Union[str, bytes]) -> str:
    if isinstance(s, bytes):
        try:
            return s.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _gemma3n.ArgumentError(f"text is not valid UTF-8 (byte {e.start})") from None
    return s


def score_pairs(session: "_gemma3n.Session",
                pairs: Sequence[Tuple[List[int], List[int]]]) -> List[Tuple[float, bool]]:
    """(sum of log-probabilities, all tokens greedy) per (context, continuation)
    id pair, in the input order; contexts are visited sorted so shared
    prefixes are evaluated once."""
    out: List[Tuple[float, bool]] = [(0.0, False)] * len(pairs)
    for i in sorted(range(len(pairs)), key=lambda k: pairs[k][0]):
        ctx, cont = pairs[i]
        prime(session, ctx)
        logprobs, greedy = session.continuation_logprobs(cont)
        out[i] = (float(logprobs.sum()), bool(greedy.all()))
    return out
