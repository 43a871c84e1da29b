"""Model and Session objects: state, NumPy outputs, lifetimes, context managers."""
import gc

import numpy as np
import pytest

import gemma3n
from conftest import LOGITS_TOL, TINY_CHAT, golden_path, load_golden


def test_model_info_and_repr(tiny_a):
    info = tiny_a.info
    assert info["vocab_size"] == 512 == tiny_a.n_vocab()
    assert info["num_layers"] == 8 and info["weight_dtype"] == "BF16"
    assert tiny_a.token_eos() == info["eos_id"] == 1
    assert "text_tiny_a" in repr(tiny_a) and not tiny_a.closed
    assert tiny_a.has_tokenizer is False
    assert "vocab" in tiny_a.describe().lower()
    assert isinstance(tiny_a, gemma3n._gemma3n.Model)


def test_session_state(tiny_a, prompt_ids):
    with tiny_a.session(n_ctx=64) as s:
        assert s.n_past == 0 and s.n_ctx == 64 and s.logits is None and s.tokens == []
        assert s.model is tiny_a and not s.logits_all
        s.eval(prompt_ids)
        assert s.n_past == len(prompt_ids) and s.tokens == prompt_ids
        logits = s.logits
        assert isinstance(logits, np.ndarray) and logits.shape == (512,)
        logits[:] = 0  # a copy: the session is unaffected
        assert np.abs(s.logits).max() > 0
        assert "n_past=12" in repr(s)
        s.reset()
        assert s.n_past == 0 and s.logits is None


def test_truncate_restores_logits(tiny_a, prompt_ids):
    ref = load_golden("text_tiny_a", "logits_prefill")
    with tiny_a.session() as s:
        s.eval(prompt_ids)
        for n in (11, 6, 1):  # within the sliding window, then beyond it (recompute)
            s.truncate(n)
            assert s.n_past == n and s.tokens == prompt_ids[:n]
            np.testing.assert_allclose(s.logits, ref[n - 1], rtol=0, atol=LOGITS_TOL)
        s.eval(prompt_ids[1:])
        np.testing.assert_allclose(s.logits, ref[-1], rtol=0, atol=LOGITS_TOL)
        s.truncate(0)
        assert s.n_past == 0 and s.logits is None
        with pytest.raises(gemma3n.ArgumentError):
            s.truncate(5)
        with pytest.raises(gemma3n.ArgumentError):
            s.truncate(-1)
        with pytest.raises(TypeError):
            s.truncate("3")


def test_scores_need_logits_all(tiny_a, prompt_ids):
    with tiny_a.session() as s:
        s.eval(prompt_ids)
        with pytest.raises(gemma3n.StateError, match="logits_all"):
            s.scores
    with tiny_a.session(logits_all=True) as s:
        assert s.logits_all and s.scores.shape == (0, 512)


def test_sample_and_configure(tiny_a, prompt_ids):
    with tiny_a.session(temperature=0) as s:
        s.eval(prompt_ids)
        greedy = s.sample()
        assert greedy == int(np.argmax(s.logits)) == 15
        s.configure(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=7)
        a = [s.sample() for _ in range(20)]
        s.configure(seed=7)  # restarts the random stream
        b = [s.sample() for _ in range(20)]
        assert a == b and len(set(a)) > 1
        with pytest.raises(TypeError, match="n_ctx"):
            s.configure(n_ctx=10)
        with pytest.raises(TypeError):
            s.configure(1)


def test_per_call_sampler_options_do_not_stick(tiny_a, prompt_ids):
    with tiny_a.session(temperature=0) as s:
        hot = list(s.generate(prompt_ids, temperature=2.0, top_k=0, top_p=1.0, min_p=0.0,
                              seed=1, max_tokens=8, ignore_eos=True, yield_ids=True))
        s.reset()
        cold = list(s.generate(prompt_ids, max_tokens=8, ignore_eos=True, yield_ids=True))
        assert cold == [int(t) for t in load_golden("text_tiny_a", "generated_ids")]
        assert hot != cold


def test_seeded_sampling_is_reproducible(tiny_a, prompt_ids):
    opts = dict(temperature=1.0, top_k=50, top_p=0.9, min_p=0.0, seed=1234, max_tokens=16,
                ignore_eos=True, yield_ids=True)
    runs = []
    for _ in range(2):
        with tiny_a.session() as s:
            runs.append(list(s.generate(prompt_ids, **opts)))
    assert runs[0] == runs[1]


def test_session_options_from_model_defaults():
    with gemma3n.Model(golden_path("text_tiny_a"), n_ctx=32, temperature=0, max_tokens=3) as m:
        with m.session() as s:
            assert s.n_ctx == 32
            gen = s.generate([2, 10, 20], ignore_eos=True)
            assert len(list(gen)) == 3 and gen.finish_reason == "length"
        with m.session(n_ctx=16) as s:
            assert s.n_ctx == 16


def test_context_managers_and_close(prompt_ids):
    with gemma3n.Model(golden_path("text_tiny_a")) as m:
        s = m.session()
    assert m.closed
    s.eval(prompt_ids)  # the session keeps the weights alive
    assert s.n_past == 12
    with pytest.raises(gemma3n.StateError, match="closed"):
        m.session()
    with pytest.raises(gemma3n.StateError, match="closed"):
        m.n_vocab()
    with pytest.raises(gemma3n.StateError, match="closed"):
        m.create_completion([2, 3])
    m.close()  # idempotent
    s.close()
    s.close()
    assert s.closed and "closed" in repr(s)
    for call in (lambda: s.eval([1]), lambda: s.logits, lambda: s.generate([2]), s.reset,
                 lambda: s.truncate(0), s.sample, lambda: s.tokens, lambda: s.n_past):
        with pytest.raises(gemma3n.StateError, match="closed"):
            call()
    with pytest.raises(gemma3n.StateError):
        with s:
            pass


@pytest.mark.parametrize("order", ["model-first", "session-first", "iterator-last", "gc-cycle"])
def test_destruction_order_never_matters(prompt_ids, order):
    m = gemma3n.Model(golden_path("text_tiny_a"))
    s = m.session()
    it = s.generate(prompt_ids, max_tokens=4, ignore_eos=True)
    next(it)
    if order == "model-first":
        del m
        gc.collect()
        assert len(list(it)) == 3
        del it, s
    elif order == "session-first":
        del it, s
        del m
    elif order == "iterator-last":
        del m, s
        gc.collect()
        assert len(list(it)) == 3
        del it
    else:  # the model's helper session references the model: a cycle only gc frees
        list(m.generate(prompt_ids, max_tokens=2, ignore_eos=True))
        del m, s, it
    gc.collect()


def test_sessions_cannot_be_built_directly():
    with pytest.raises(TypeError):
        gemma3n.Session()
    with pytest.raises(TypeError):
        gemma3n.Generation()


def test_options_table():
    names = {o["name"]: o for o in gemma3n.options()}
    for n in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "max_tokens",
              "stop", "ignore_eos", "n_ctx", "n_threads", "logits_all", "logit_bias"):
        assert n in names
    assert names["n_threads"]["group"] == "model" and names["n_ctx"]["group"] == "session"


def test_help_is_useful():
    for obj in (gemma3n.Model, gemma3n.Session, gemma3n.Generation, gemma3n.Tokenizer,
                gemma3n.Model.create_completion, gemma3n.Session.generate, gemma3n.Session.eval,
                gemma3n.Model.loglikelihood, gemma3n.Session.continuation_logprobs):
        assert obj.__doc__ and len(obj.__doc__) > 40, obj


def test_string_and_seed_options(prompt_ids):
    with gemma3n.Model(golden_path("text_tiny_a"), weights="f32") as m:
        ref = load_golden("text_tiny_a", "logits_prefill")
        with m.session(submodel="full") as s:
            s.eval(prompt_ids)
            np.testing.assert_allclose(s.logits, ref[-1], rtol=0, atol=LOGITS_TOL)
        big = 2**64 - 1  # seeds are exact over the whole uint64 range
        opts = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, max_tokens=12,
                    ignore_eos=True, yield_ids=True)
        with m.session() as s:
            a = list(s.generate(prompt_ids, seed=big, **opts))
            s.reset()
            b = list(s.generate(prompt_ids, seed=big - 1, **opts))
            s.reset()
            assert list(s.generate(prompt_ids, seed=big, **opts)) == a != b
        with pytest.raises(gemma3n.ArgumentError, match="seed"):
            m.session(seed=2**64)
        with pytest.raises(gemma3n.ArgumentError, match="submodel"):
            m.session(submodel="no-such-size")
        with pytest.raises(TypeError, match="weights"):
            m.session(weights="f16")
    with pytest.raises(gemma3n.ArgumentError, match="weights"):
        gemma3n.Model(golden_path("text_tiny_a"), weights="q9")
    with pytest.raises(TypeError, match="weights"):
        gemma3n.Model(golden_path("text_tiny_a"), weights=16)
    with gemma3n.Model(TINY_CHAT, load_tokenizer=False) as m:
        assert not m.has_tokenizer


def test_kv_type_option(tiny_a, prompt_ids):
    # f16 K/V cache: logits close to the f32 cache's (tests/model/test_kv_f16.c
    # justifies 2e-2 from the 2^-11 rounding of the RMSNormed K/V), not equal,
    # and the same greedy ids as the golden reference.
    with tiny_a.session(kv_type="f32") as a, tiny_a.session(kv_type="f16") as b:
        a.eval(prompt_ids)
        b.eval(prompt_ids)
        d = np.abs(a.logits - b.logits).max()
        assert 0 < d <= 2e-2
        ref = load_golden("text_tiny_a", "generated_ids").tolist()
        b.reset()
        ids = list(b.generate(prompt_ids, temperature=0, max_tokens=len(ref), ignore_eos=True,
                              yield_ids=True))
        assert ids == ref
    for bad in ("bf16", "F16", ""):
        with pytest.raises(ValueError, match="kv_type"):
            tiny_a.session(kv_type=bad)
    with pytest.raises(TypeError, match="kv_type"):
        tiny_a.session(kv_type=16)
