"""Ctrl-C stops a generation within a token and a long prefill within a chunk;
Session.cancel() stops work from another thread."""
import _thread
import signal
import threading
import time

import pytest

import gemma3n

DELAY = 0.3  # seconds before the interrupt
PROMPT_LONG = [2] + [(i * 7) % 500 + 3 for i in range(8191)]  # ~30 s to evaluate


def interrupt_later(how):
    """Sends SIGINT to the main thread (or simulates it) after DELAY; returns the send time."""
    sent = []
    main = threading.main_thread().ident

    def fire():
        sent.append(time.perf_counter())
        if how == "signal":
            signal.pthread_kill(main, signal.SIGINT)
        else:
            _thread.interrupt_main()

    t = threading.Timer(DELAY, fire)
    t.start()
    return t, sent


@pytest.fixture(autouse=True)
def default_sigint():
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("how", ["signal", "interrupt_main"])
def test_ctrl_c_stops_generation(tiny_a, how):
    with tiny_a.session(n_ctx=32768) as s:
        s.eval([2, 10, 20])
        gen = s.generate(None, max_tokens=-1, ignore_eos=True)
        timer, sent = interrupt_later(how)
        with pytest.raises(KeyboardInterrupt):
            "".join(gen)  # consumed in C: only the binding's signal check can stop it
        stopped = time.perf_counter()
        timer.join()
        assert sent and stopped - sent[0] < 1.0, stopped - sent[0]  # ~1-4 ms per token
        assert 3 < s.n_past < 32768
        n = s.n_past  # the session is still usable, the generation can go on
        assert len([next(gen) for _ in range(2)]) == 2 and s.n_past == n + 2


@pytest.mark.parametrize("how", ["signal", "interrupt_main"])
def test_ctrl_c_stops_long_prefill(tiny_a, how):
    with tiny_a.session(n_ctx=8192) as s:
        timer, sent = interrupt_later(how)
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            s.eval(PROMPT_LONG)
        stopped = time.perf_counter()
        timer.join()
        assert sent and stopped - sent[0] < 3.0, stopped - sent[0]  # within one 128-token chunk
        assert stopped - start < 10
        assert 0 < s.n_past < len(PROMPT_LONG) and s.n_past % 128 == 0
        assert s.tokens == PROMPT_LONG[:s.n_past]


def test_cancel_from_another_thread(tiny_a):
    with tiny_a.session(n_ctx=8192) as s:
        t = threading.Timer(DELAY, s.cancel)
        t.start()
        with pytest.raises(gemma3n.CancelledError) as e:
            s.eval(PROMPT_LONG)
        t.join()
        assert e.value.status == "cancelled" and 0 < s.n_past < len(PROMPT_LONG)
        s.reset()
        s.eval([2, 5])  # a cancel does not leak into the next call
        gen = s.generate(None, max_tokens=-1, ignore_eos=True)
        t = threading.Timer(DELAY, s.cancel)
        t.start()
        with pytest.raises(gemma3n.CancelledError):
            for _ in gen:
                pass
        t.join()
        assert gen.finish_reason == "cancelled" and gen.done
