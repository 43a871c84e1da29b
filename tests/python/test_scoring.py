"""Log-likelihood scoring: continuation_logprobs, loglikelihood(_batch)."""
import numpy as np
import pytest

import gemma3n
from gemma3n import scoring
from conftest import load_golden


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@pytest.fixture(scope="module")
def golden_case():
    ctx = [int(t) for t in load_golden("text_tiny_a", "input_ids")[0]]
    cont = [int(t) for t in load_golden("text_tiny_a", "generated_ids")]
    full = load_golden("text_tiny_a", "logits_full_sequence")  # rows T-1.. predict `cont`
    rows = full[len(ctx) - 1:]
    expected = log_softmax(rows)[np.arange(len(cont)), cont]
    return ctx, cont, expected


@pytest.mark.parametrize("logits_all", [True, False])
def test_continuation_logprobs_match_golden(tiny_a, golden_case, logits_all):
    ctx, cont, expected = golden_case
    with tiny_a.session(logits_all=logits_all) as s:
        s.eval(ctx)
        lp, greedy = s.continuation_logprobs(cont)
        assert lp.dtype == np.float64 and greedy.dtype == np.bool_ and lp.shape == (len(cont),)
        np.testing.assert_allclose(lp, expected, rtol=0, atol=2e-3)
        assert greedy.all()  # the golden continuation is the greedy one
        assert s.n_past == len(ctx) and s.tokens == ctx  # the context is left as it was
        lp2, _ = s.continuation_logprobs(cont)
        np.testing.assert_allclose(lp2, lp, rtol=0, atol=1e-4)  # truncate re-runs a token: float noise


def test_loglikelihood_with_ids(tiny_a, golden_case):
    ctx, cont, expected = golden_case
    total, greedy = tiny_a.loglikelihood(ctx, cont)
    assert isinstance(total, float) and greedy is True
    assert abs(total - expected.sum()) < 1e-2
    other = cont[:-1] + [(cont[-1] + 1) % 512]
    total2, greedy2 = tiny_a.loglikelihood(ctx, other)
    assert greedy2 is False and total2 < total


def test_batch_equals_single_calls_in_order(tiny_a, golden_case):
    ctx, cont, _ = golden_case
    reqs = [(ctx, [t]) for t in (15, 3, 200, 15)] + [(ctx[:5], cont[:3]), (ctx, cont)]
    batch = tiny_a.loglikelihood_batch(reqs)
    single = [tiny_a.loglikelihood(c, x) for c, x in reqs]
    assert len(batch) == len(reqs)
    for (a, ga), (b, gb) in zip(batch, single):
        assert abs(a - b) < 1e-4 and ga == gb  # KV reuse changes batch splits: float noise
    assert batch[0] == batch[3]


class Recorder:
    """Wraps a Session and counts the tokens it is asked to evaluate."""

    def __init__(self, session):
        self.s, self.evaluated = session, 0

    def eval(self, tokens):
        self.evaluated += len(tokens)
        self.s.eval(tokens)

    def __getattr__(self, name):
        return getattr(self.s, name)


def test_shared_context_is_evaluated_once(tiny_a):
    """MMLU: 4 one-token answers to one question cost one context evaluation."""
    question = [2] + list(range(20, 60))
    answers = [[300], [301], [302], [303]]
    with tiny_a.session(logits_all=True) as s:
        rec = Recorder(s)
        out = scoring.score_pairs(rec, [(question, a) for a in answers])
        assert rec.evaluated == len(question)
        # multi-token continuations evaluate their own tokens (all but the last) only
        rec.evaluated = 0
        scoring.score_pairs(rec, [(question, [300, 301, 302]), (question, [303, 304])])
        assert rec.evaluated == 0  # continuation_logprobs evaluates them, not eval()
        assert s.tokens == question
    ref = log_softmax(_logits_after(tiny_a, question))
    for (lp, _), a in zip(out, answers):
        assert abs(lp - ref[a[0]]) < 1e-4


def _logits_after(model, ids):
    with model.session() as s:
        s.eval(ids)
        return s.logits


def test_text_pairs_follow_lm_eval(chat_model):
    ctx, cont = "The cat is in the", " hat"
    total, _ = chat_model.loglikelihood(ctx, cont)
    whole = chat_model.tokenize(ctx + cont)
    n = len(chat_model.tokenize(ctx))
    expected, _ = chat_model.loglikelihood(whole[:n], whole[n:])
    assert abs(total - expected) < 1e-4
    moved, _ = chat_model.loglikelihood(ctx + " ", "hat")  # trailing space joins the continuation
    assert abs(moved - total) < 1e-4
    assert chat_model.loglikelihood("", "hello")[0] < 0  # context "" = <bos>


def test_scoring_errors(tiny_a, chat_model):
    with pytest.raises(gemma3n.ArgumentError, match="continuation is empty"):
        tiny_a.loglikelihood([2, 3], [])
    with pytest.raises(gemma3n.ArgumentError, match="context is empty"):
        tiny_a.loglikelihood([], [2])
    with pytest.raises(TypeError):
        chat_model.loglikelihood("text", [1, 2])
    with pytest.raises(gemma3n.ArgumentError):
        tiny_a.loglikelihood([2, 3], [999])
    with tiny_a.session() as s:
        with pytest.raises(gemma3n.StateError, match="context"):
            s.continuation_logprobs([5])
        s.eval([2])
        with pytest.raises(gemma3n.ArgumentError):
            s.continuation_logprobs([])
    with tiny_a.session(n_ctx=4) as s:
        s.eval([2, 3, 4])
        with pytest.raises(gemma3n.ContextOverflowError):
            s.continuation_logprobs([5, 6, 7])
        assert s.n_past == 3
        lp, _ = s.continuation_logprobs([5, 6])  # exactly fits
        assert lp.shape == (2,)
