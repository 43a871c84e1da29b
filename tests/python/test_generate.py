"""Session.generate and Model.generate: pieces, ids, finish reasons, stops, UTF-8."""
import pytest

import gemma3n

EOT, BOS = 106, 2
BYTE = {b: 256 + b for b in range(256)}  # tiny_chat's <0xNN> byte-fallback ids


def forced(*ids):
    """Options that make greedy decoding emit `ids` in order: descending biases
    plus a huge repetition penalty that flattens each token once it was used."""
    return dict(temperature=0, logit_bias={t: 100.0 - 10 * i for i, t in enumerate(ids)},
                repeat_penalty=1e6, repeat_last_n=-1, max_tokens=len(ids), ignore_eos=True)


def test_pieces_are_utf8_safe(chat_model):
    with chat_model.session() as s:
        gen = s.generate("x", **forced(BYTE[0xC3], BYTE[0xA9]))  # "é" in two byte tokens
        assert list(gen) == ["", "é"]
        gen = s.generate("x", **forced(BYTE[0xE2], BYTE[0x82], BYTE[0xAC]))  # "€" in three
        assert list(gen) == ["", "", "€"]
        assert gen.tokens == [BYTE[0xE2], BYTE[0x82], BYTE[0xAC]]


def test_stream_equals_non_stream(chat_model):
    for seed in (1, 2, 3):
        opts = dict(max_tokens=24, temperature=0.9, top_k=0, top_p=1.0, min_p=0.0, seed=seed)
        with chat_model.session() as s:
            gen = s.generate("hello world", **opts)
            pieces = list(gen)
        # one piece per token added to the context, plus held-back text at a stop token
        assert len(gen.tokens) <= len(pieces) <= len(gen.tokens) + 1
        full = chat_model.create_completion("hello world", **opts)
        streamed = chat_model.create_completion("hello world", stream=True, **opts)
        text = "".join(c["choices"][0]["text"] for c in streamed)
        assert text == full["choices"][0]["text"] == "".join(pieces)
        assert full["usage"]["completion_tokens"] == len(gen.tokens)


def test_stop_token_ends_without_text(chat_model):
    with chat_model.session() as s:
        gen = s.generate("hi", temperature=0, logit_bias={EOT: 100.0}, max_tokens=10)
        assert list(gen) == []
        assert gen.finish_reason == "stop" and gen.stop_token == EOT and gen.tokens == []
        n = s.n_past
        assert s.tokens[-1] != EOT  # stop tokens are not added to the context
        ids = list(s.generate(None, temperature=0, logit_bias={EOT: 100.0}, yield_ids=True))
        assert ids == [EOT] and s.n_past == n
        gen = s.generate(None, temperature=0, logit_bias={EOT: 100.0}, max_tokens=3,
                         ignore_eos=True, yield_ids=True)
        assert list(gen) == [EOT] * 3 and gen.finish_reason == "length"


def test_stop_strings(chat_model):
    with chat_model.session() as s:
        free = "".join(s.generate("hello", temperature=0, max_tokens=12, ignore_eos=True))
        assert len(free) > 4
        stop = free[2:4]
        s.reset()
        gen = s.generate("hello", temperature=0, max_tokens=12, ignore_eos=True, stop=[stop, "zzz"])
        text = "".join(gen)
        assert gen.finish_reason == "stop" and stop not in text and free.startswith(text)
        assert text == free[:free.index(stop)]


def test_length_and_full_context(tiny_a, prompt_ids):
    with tiny_a.session(n_ctx=15) as s:
        gen = s.generate(prompt_ids, max_tokens=0, ignore_eos=True, yield_ids=True)
        assert len(list(gen)) == 3 and gen.finish_reason == "length" and s.n_past == 15
        gen = s.generate(None, yield_ids=True)  # the context is already full
        assert list(gen) == [] and gen.finish_reason == "length"
    with tiny_a.session() as s:
        gen = s.generate(prompt_ids, max_tokens=5, ignore_eos=True, yield_ids=True)
        assert len(list(gen)) == 5 and gen.done and gen.n_prompt_tokens == 12
        assert list(gen) == []  # exhausted


def test_text_prompt_bos_and_special(chat_model):
    with chat_model.session() as s:
        gen = s.generate("<start_of_turn>user", max_tokens=1)
        list(gen)
        expected = chat_model.tokenize("<start_of_turn>user", add_bos=True, special=True)
        assert s.tokens[:2] == [BOS, 105] and gen.n_prompt_tokens == len(expected)
        assert s.tokens[:len(expected)] == expected
        n = s.n_past
        list(s.generate(" more", max_tokens=1, ignore_eos=True))  # continuing: no <bos>
        assert BOS not in s.tokens[n:]
        s.reset()
        list(s.generate("<start_of_turn>", special=False, add_bos=False, max_tokens=1))
        assert 105 not in s.tokens and s.tokens[0] != BOS


def test_newer_generation_supersedes(tiny_a, prompt_ids):
    with tiny_a.session() as s:
        a = s.generate(prompt_ids, max_tokens=4, ignore_eos=True)
        next(a)
        b = s.generate(None, max_tokens=2, ignore_eos=True)
        with pytest.raises(gemma3n.StateError, match="later generate"):
            next(a)
        assert len(list(b)) == 2
        c = s.generate(None, max_tokens=2)
        s.reset()
        with pytest.raises(gemma3n.StateError):
            next(c)


def test_generation_close_and_repr(tiny_a, prompt_ids):
    with tiny_a.session() as s:
        gen = s.generate(prompt_ids, max_tokens=10, ignore_eos=True)
        next(gen)
        gen.close()
        assert list(gen) == [] and gen.done and gen.finish_reason is None
        assert "1 tokens" in repr(gen) and gen.session is s


def test_model_generate_like_llama_cpp(chat_model):
    prompt = chat_model.tokenize("hello")
    it = chat_model.generate(prompt, temp=0, ignore_eos=True)
    first = [next(it) for _ in range(5)]  # unbounded: the caller stops
    it.close()
    again = list(chat_model.generate(prompt, temp=0, max_tokens=5, ignore_eos=True))
    assert first == again
    # reset=False continues the same context
    more = list(chat_model.generate(prompt, temp=0, max_tokens=5, ignore_eos=True))
    assert more == first
    busy = chat_model.generate(prompt, temp=0, max_tokens=3, ignore_eos=True)
    next(busy)  # keeps the helper session: the next call gets a fresh one
    assert list(chat_model.generate(prompt, temp=0, max_tokens=5, ignore_eos=True)) == first
    busy.close()
