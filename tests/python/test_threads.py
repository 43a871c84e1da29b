"""Threads: the GIL is released while the core works, sessions of one model run
in parallel with the same results as sequentially, and one session used from
two threads raises StateError instead of racing."""
import threading
import time

import numpy as np

import gemma3n

OPTS = dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, max_tokens=48, ignore_eos=True,
            yield_ids=True)


def workload(model, seed):
    """A prompt evaluation with scores, then a seeded sampled generation."""
    rng = np.random.default_rng(seed)
    prompt = [2] + rng.integers(3, 512, size=150).tolist()
    with model.session(logits_all=True) as s:
        s.eval(prompt)
        scores = s.scores
        ids = list(s.generate(None, seed=seed, **OPTS))
    return scores, ids


def test_two_threads_two_sessions_match_sequential(tiny_a):
    seeds = [11, 22]
    sequential = [workload(tiny_a, sd) for sd in seeds]
    for _ in range(3):
        results, errors = [None, None], []

        def run(i):
            try:
                results[i] = workload(tiny_a, seeds[i])
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for (s_scores, s_ids), (p_scores, p_ids) in zip(sequential, results):
            np.testing.assert_array_equal(p_scores, s_scores)
            assert p_ids == s_ids


def test_gil_is_released_during_eval(tiny_a):
    """A Python thread keeps running while another thread's eval is in C."""
    ticks = 0
    done = threading.Event()

    def spin():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    with tiny_a.session(n_ctx=2048) as s:
        ids = [2] + [7] * 500
        t = threading.Thread(target=spin)
        t.start()
        try:
            start = time.perf_counter()
            s.eval(ids)
            elapsed = time.perf_counter() - start
        finally:
            done.set()
            t.join()
    # Holding the GIL through eval would leave the spinner a few switch intervals at most.
    assert elapsed > 0.05 and ticks > 1000, (elapsed, ticks)


def test_one_session_two_threads_raises(tiny_a):
    with tiny_a.session(n_ctx=4096) as s:
        ids = [2] + [9] * 1200
        seen = []
        done = threading.Event()

        def long_eval():
            try:
                s.eval(ids)
            finally:
                done.set()

        t = threading.Thread(target=long_eval)
        t.start()
        while not done.is_set():
            try:
                s.eval([3])
            except gemma3n.StateError as e:
                seen.append(str(e))
            time.sleep(0.001)
        t.join()
        assert seen and "busy" in seen[0]
        assert s.n_past >= len(ids)  # the owner's eval completed


def test_close_while_busy_is_refused(tiny_a):
    s = tiny_a.session(n_ctx=4096)
    done = threading.Event()
    refused = []
    t = threading.Thread(target=lambda: (s.eval([2] + [9] * 1200), done.set()))
    t.start()
    while not done.is_set():
        try:
            s.close()
            break
        except gemma3n.StateError as e:
            refused.append(str(e))
        time.sleep(0.001)
    t.join()
    assert refused and "another thread" in refused[0]
    s.close()


def test_model_helpers_from_threads(chat_model):
    prompts = ["hello world", "the cat", "in the hat", "you and I"]
    expected = [chat_model.create_completion(p, max_tokens=12, temperature=0.7, seed=5)
                ["choices"][0]["text"] for p in prompts]
    got = [None] * len(prompts)

    def run(i):
        got[i] = chat_model.create_completion(prompts[i], max_tokens=12, temperature=0.7,
                                              seed=5)["choices"][0]["text"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected
