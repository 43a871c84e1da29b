"""Leak checks (bottleneck's memory_test.py pattern): many create/use/free cycles
leave the resident set size and the number of live Python objects flat."""
import gc
import os

import numpy as np
import pytest

import gemma3n
from conftest import TINY_CHAT, golden_path, rss_bytes

MB = 1 << 20


def measure(cycle, n, warmup=50):
    for i in range(warmup):
        cycle(i)
    gc.collect()
    rss0, objs0 = rss_bytes(), len(gc.get_objects())
    for i in range(n):
        cycle(i)
    gc.collect()
    return rss_bytes() - rss0, len(gc.get_objects()) - objs0


def test_session_generate_cycles(chat_model):
    def cycle(i):
        with chat_model.session(n_ctx=128, logits_all=True) as s:
            s.eval([2, 10 + i % 50, 20])
            _ = s.logits, s.scores, s.tokens
            gen = s.generate(None, max_tokens=4, ignore_eos=True, stop=["zz"], seed=i,
                             logit_bias={5: -1.0})
            "".join(gen)
            s.continuation_logprobs([3, 4])
            _ = gen.tokens, gen.finish_reason

    rss, objs = measure(cycle, 1000)
    assert rss < 8 * MB, f"RSS grew by {rss / MB:.1f} MB over 1000 cycles"
    assert objs < 100, f"{objs} more live objects"


def test_model_helper_cycles(chat_model):
    def cycle(i):
        chat_model.create_completion("hello", max_tokens=3, seed=i)
        list(chat_model.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=2,
                                               stream=True))
        chat_model.loglikelihood("the cat", " hat")
        chat_model.detokenize(chat_model.tokenize("hello world"))

    rss, objs = measure(cycle, 300)
    assert rss < 8 * MB, f"RSS grew by {rss / MB:.1f} MB"
    assert objs < 100, f"{objs} more live objects"


def test_model_open_close_cycles():
    def cycle(i):
        with gemma3n.Model(golden_path("text_tiny_a")) as m:
            s = m.session(n_ctx=64)
            list(s.generate([2, 3], max_tokens=2, ignore_eos=True))
        del s  # closed model, then the session: the core frees the weights here
        t = gemma3n.Tokenizer(os.path.join(TINY_CHAT, "tokenizer.json"))
        t.encode("hello")
        t.close()

    rss, objs = measure(cycle, 200, warmup=20)
    assert rss < 8 * MB, f"RSS grew by {rss / MB:.1f} MB"
    assert objs < 100, f"{objs} more live objects"


def test_error_path_cycles(tiny_a):
    def cycle(i):
        for bad in (lambda: tiny_a.session(n_ctx=10**7), lambda: gemma3n.Model("/nonexistent"),
                    lambda: s.eval([2, 9999]), lambda: s.generate([2], temperature="x"),
                    lambda: s.eval(np.zeros(3)), lambda: s.generate([2], stop=["a"] * 9)):
            with pytest.raises((gemma3n.Error, TypeError)):
                bad()

    s = tiny_a.session(n_ctx=64)
    rss, objs = measure(cycle, 500)
    s.close()
    assert rss < 8 * MB, f"RSS grew by {rss / MB:.1f} MB"
    assert objs < 100, f"{objs} more live objects"
