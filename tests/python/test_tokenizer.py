"""Text <-> ids: Model.tokenize/detokenize and the standalone Tokenizer."""
import json
import os
import threading

import numpy as np
import pytest

import gemma3n
from conftest import TINY_CHAT, full_tokenizer_dir


@pytest.fixture(scope="module")
def tok():
    with gemma3n.Tokenizer(os.path.join(TINY_CHAT, "tokenizer.json")) as t:
        yield t


def test_model_tokenize_roundtrip(chat_model):
    ids = chat_model.tokenize("hello world")
    assert ids[0] == 2 and all(isinstance(i, int) for i in ids)
    assert chat_model.tokenize(b"hello world") == ids  # bytes, as llama-cpp-python takes
    assert chat_model.tokenize("hello world", add_bos=False) == ids[1:]
    assert chat_model.detokenize(ids) == "<bos>hello world"
    assert chat_model.detokenize(ids, skip_special=True) == "hello world"
    assert chat_model.detokenize(np.array(ids, dtype=np.int32)) == "<bos>hello world"
    assert chat_model.detokenize_bytes(ids[1:]) == b"hello world"
    assert chat_model.detokenize([]) == "" and chat_model.tokenize("", add_bos=False) == []


def test_special_tokens(chat_model):
    assert chat_model.tokenize("<end_of_turn>", add_bos=False, special=True) == [106]
    assert 106 not in chat_model.tokenize("<end_of_turn>", add_bos=False)
    assert chat_model.token_id("<end_of_turn>") == 106 and chat_model.token_id("nope!") is None
    assert chat_model.token_is_special(106) and not chat_model.token_is_special(50)
    assert chat_model.token_bytes(4) == b" " and chat_model.token_bytes(256 + 0x0A) == b"\n"
    assert chat_model.info["end_of_turn_id"] == 106


def test_multibyte_and_byte_fallback(chat_model):
    text = "héllo €"
    ids = chat_model.tokenize(text, add_bos=False)
    assert chat_model.detokenize(ids) == text
    raw = chat_model.detokenize_bytes(ids)
    assert raw == text.encode()
    cut = chat_model.detokenize_bytes(ids[:2])  # may end inside "é": raw bytes, no U+FFFD
    assert text.encode().startswith(cut)


def test_invalid_input(chat_model):
    with pytest.raises(gemma3n.ArgumentError):
        chat_model.tokenize(b"ab\xff\xfecd")
    with pytest.raises(gemma3n.ArgumentError):
        chat_model.tokenize("lone \udc80 surrogate")
    with pytest.raises(TypeError, match="text"):
        chat_model.tokenize(123)
    with pytest.raises(TypeError, match="add_bos"):
        chat_model.tokenize("x", add_bos="yes")
    with pytest.raises(gemma3n.ArgumentError):
        chat_model.detokenize([1, 2, 512])
    with pytest.raises(gemma3n.ArgumentError):
        chat_model.detokenize_bytes([-1])
    with pytest.raises(TypeError, match="ids"):
        chat_model.detokenize("hello")
    with pytest.raises(TypeError):
        chat_model.detokenize([1.5])
    with pytest.raises(gemma3n.ArgumentError):
        chat_model.token_bytes(10**6)


def test_no_tokenizer_is_a_state_error(tiny_a):
    for call in (lambda: tiny_a.tokenize("x"), lambda: tiny_a.detokenize([1]),
                 lambda: tiny_a.session().generate("text")):
        with pytest.raises(gemma3n.StateError, match="no tokenizer") as e:
            call()
        assert e.value.status == "no_tokenizer"


def test_standalone_tokenizer(tok, chat_model):
    assert tok.vocab_size == 512 and tok.bos_id == 2 and tok.eos_id == 1
    for text in ("hello world", "The cat is in the hat.", "a\nb  c", "é€"):
        assert tok.encode(text) == chat_model.tokenize(text)
        assert tok.decode(tok.encode(text, add_bos=False)) == text
    assert tok.encode("<start_of_turn>x", add_bos=False, special=True)[0] == 105
    assert tok.decode([2, 105], skip_special=True) == ""
    assert tok.decode_bytes([256 + 0xC3]) == b"\xc3"
    assert tok.token_id("<eos>") == 1 and tok.is_special(1) and tok.token_bytes(4) == b" "
    assert "tokenizer.json" in repr(tok)


def test_tokenizer_errors_and_close(tmp_path):
    with pytest.raises(gemma3n.FileError) as e:
        gemma3n.Tokenizer(tmp_path / "missing.json")
    assert isinstance(e.value, OSError)
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": {"type": "BPE", "vocab": ')
    with pytest.raises(gemma3n.ModelFormatError):
        gemma3n.Tokenizer(bad)
    t = gemma3n.Tokenizer(os.path.join(TINY_CHAT, "tokenizer.json"))
    t.close()
    t.close()
    assert t.closed
    with pytest.raises(gemma3n.StateError, match="closed"):
        t.encode("x")


def test_tokenizer_threads(tok):
    texts = [f"sample {i} hello world the end" * 20 for i in range(8)]
    expected = [tok.encode(t) for t in texts]
    results = [None] * len(texts)

    def work(i):
        for _ in range(20):
            results[i] = tok.encode(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == expected


@pytest.fixture(scope="module")
def gemma_tok():
    d = full_tokenizer_dir()
    if d is None or not os.path.exists(os.path.join(d, "reference_encodings.json")):
        pytest.skip("the full Gemma tokenizer.json + reference_encodings.json are not available")
    with gemma3n.Tokenizer(os.path.join(d, "tokenizer.json")) as t:
        with open(os.path.join(d, "reference_encodings.json"), encoding="utf-8") as f:
            yield t, json.load(f)


def test_full_gemma_tokenizer_reference(gemma_tok):
    t, samples = gemma_tok
    assert t.vocab_size >= 262144
    for s in samples:
        assert t.encode(s["text"], add_bos=False, special=True) == s["ids_plain"], s["text"][:60]
        assert t.encode(s["text"], add_bos=True, special=True) == s["ids_with_bos"]
        assert t.decode(s["ids_plain"]) == s["decoded"]
