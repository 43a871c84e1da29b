"""Every bad input raises the documented exception, with a message naming the problem."""
import os
import shutil

import numpy as np
import pytest

import gemma3n
from conftest import golden_path


def test_hierarchy():
    assert issubclass(gemma3n.Error, RuntimeError)
    assert issubclass(gemma3n.FileError, gemma3n.Error) and issubclass(gemma3n.FileError, OSError)
    assert issubclass(gemma3n.ArgumentError, ValueError)
    assert issubclass(gemma3n.OutOfMemoryError, MemoryError)
    for name in ("ModelFormatError", "ContextOverflowError", "StateError", "CancelledError",
                 "InternalError"):
        assert issubclass(getattr(gemma3n, name), gemma3n.Error)


@pytest.fixture
def model_copy(tmp_path):
    d = tmp_path / "model"
    shutil.copytree(golden_path("text_tiny_a"), d)
    os.chmod(d / "model.safetensors", 0o644)
    os.chmod(d / "config.json", 0o644)
    return d


def test_missing_directory(tmp_path):
    with pytest.raises(gemma3n.FileError) as e:
        gemma3n.Model(tmp_path / "does-not-exist")
    assert isinstance(e.value, OSError) and "does-not-exist" in str(e.value)
    assert e.value.status == "io"


def test_empty_directory(tmp_path):
    with pytest.raises(gemma3n.Error, match="config.json"):
        gemma3n.Model(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "garbage-header", "huge-header-length"])
def test_corrupt_safetensors(model_copy, damage):
    path = model_copy / "model.safetensors"
    data = path.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "garbage-header":
        data = data[:8] + b"{not json" + data[17:]
    else:
        data = (2**40).to_bytes(8, "little") + data[8:]
    path.write_bytes(data)
    with pytest.raises(gemma3n.ModelFormatError) as e:
        gemma3n.Model(model_copy)
    assert e.value.status == "format" and "safetensors" in str(e.value)


def test_corrupt_config(model_copy):
    (model_copy / "config.json").write_text('{"text_config": {"hidden_size": "wide"}}')
    with pytest.raises(gemma3n.ModelFormatError):
        gemma3n.Model(model_copy)


def test_bad_token_ids(tiny_a):
    with tiny_a.session() as s:
        for ids in ([2, 512], [-1], [2, 3, 10**12]):
            with pytest.raises(gemma3n.ArgumentError):
                s.eval(ids)
        assert s.n_past == 0  # nothing was evaluated
        big = [2] + [5] * 200 + [9999]  # longer than one eval chunk: checked up front
        with pytest.raises(gemma3n.ArgumentError, match="position 201"):
            s.eval(big)
        assert s.n_past == 0
        with pytest.raises(gemma3n.ArgumentError):
            s.generate([2, 700])
        with pytest.raises(gemma3n.ArgumentError):
            s.eval(np.array([2, 600], dtype=np.uint16))


def test_empty_prompt(tiny_a):
    with tiny_a.session() as s:
        with pytest.raises(gemma3n.ArgumentError, match="empty"):
            s.eval([])
        with pytest.raises(gemma3n.ArgumentError, match="empty"):
            s.generate([])
        with pytest.raises(gemma3n.StateError, match="evaluate"):
            s.generate(None)  # nothing to continue from


def test_context_overflow(tiny_a):
    with tiny_a.session(n_ctx=16) as s:
        s.eval([2] * 10)
        with pytest.raises(gemma3n.ContextOverflowError, match="n_ctx"):
            s.eval([3] * 7)
        assert s.n_past == 10
        with pytest.raises(gemma3n.ContextOverflowError):
            s.eval([3] * 300)  # chunked path
        assert s.n_past == 10
        s.eval([3] * 6)
        assert s.n_past == 16
    with pytest.raises(gemma3n.ArgumentError, match="n_ctx"):
        tiny_a.session(n_ctx=10**6)


def test_invalid_utf8(chat_model):
    with pytest.raises(gemma3n.ArgumentError, match="UTF-8"):
        chat_model.tokenize(b"caf\xc3")
    with chat_model.session() as s:
        with pytest.raises(gemma3n.ArgumentError):
            s.generate(b"\xff\xfe")


@pytest.mark.parametrize("call, exc, match", [
    (lambda s: s.eval("hello"), TypeError, "tokens"),
    (lambda s: s.eval(5), TypeError, "tokens"),
    (lambda s: s.eval([1, "2"]), TypeError, r"tokens\[1\]"),
    (lambda s: s.eval([1.0]), TypeError, r"tokens\[0\]"),
    (lambda s: s.eval([True]), TypeError, r"tokens\[0\]"),
    (lambda s: s.eval(np.zeros((2, 2), dtype=np.int64)), TypeError, "1-D"),
    (lambda s: s.eval(np.zeros(3, dtype=np.float32)), TypeError, "integer"),
    (lambda s: s.generate([2], temperature="hot"), TypeError, "temperature"),
    (lambda s: s.generate([2], top_k=1.5), TypeError, "top_k"),
    (lambda s: s.generate([2], top_p=1.5), gemma3n.ArgumentError, "top_p"),
    (lambda s: s.generate([2], seed=-1), gemma3n.ArgumentError, "seed"),
    (lambda s: s.generate([2], stop=5), TypeError, "stop"),
    (lambda s: s.generate([2], stop=[b"x"]), TypeError, "stop"),
    (lambda s: s.generate([2], stop=[""]), gemma3n.ArgumentError, "stop"),
    (lambda s: s.generate([2], stop=["a"] * 9), gemma3n.ArgumentError, "stop"),
    (lambda s: s.generate([2], logit_bias=[1]), TypeError, "logit_bias"),
    (lambda s: s.generate([2], logit_bias={"x": 1}), TypeError, "logit_bias"),
    (lambda s: s.generate([2], n_ctx=5), TypeError, "n_ctx"),
    (lambda s: s.generate([2], n_threads=5), TypeError, "n_threads"),
    (lambda s: s.generate([2], temprature=0), TypeError, "temprature"),
    (lambda s: s.generate([2], ignore_eos="no"), TypeError, "ignore_eos"),
    (lambda s: s.generate([2], yield_ids=[]), TypeError, "yield_ids"),
    (lambda s: s.generate([2], [3]), TypeError, "positional"),
    (lambda s: s.continuation_logprobs("x"), TypeError, "tokens"),
])
def test_wrong_arguments(tiny_a, call, exc, match):
    with tiny_a.session() as s:
        with pytest.raises(exc, match=match):
            call(s)
        assert s.n_past == 0


def test_bad_logit_bias_token(tiny_a):
    with tiny_a.session() as s:
        s.eval([2])
        with pytest.raises(gemma3n.ArgumentError):
            list(s.generate(None, logit_bias={100000: 1.0}, max_tokens=1))


def test_model_arguments(tmp_path):
    with pytest.raises(TypeError):
        gemma3n.Model()
    with pytest.raises(TypeError):
        gemma3n.Model(42)
    with pytest.raises(TypeError, match="bogus"):
        gemma3n.Model(golden_path("text_tiny_a"), bogus=1)
    with pytest.raises(gemma3n.ArgumentError, match="n_threads"):
        gemma3n.Model(golden_path("text_tiny_a"), n_threads=-2)
    with pytest.raises(TypeError, match="keyword"):
        gemma3n.Model(golden_path("text_tiny_a")).session(5)
    m = gemma3n.Model(path=golden_path("text_tiny_a"), n_threads=2)  # path by keyword
    assert m.n_vocab() == 512
    m.close()
