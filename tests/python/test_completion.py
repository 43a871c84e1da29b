"""create_completion / create_chat_completion return llama-cpp-python's shapes
(llama_cpp.llama_types: CreateCompletionResponse, CreateChatCompletionResponse,
and the streamed chunk types)."""
import pytest

import gemma3n

USAGE_KEYS = {"prompt_tokens", "completion_tokens", "total_tokens"}


def check_usage(u):
    assert set(u) == USAGE_KEYS and all(isinstance(v, int) for v in u.values())
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def check_completion(r, model_name="tiny_chat"):
    assert set(r) == {"id", "object", "created", "model", "choices", "usage"}
    assert r["id"].startswith("cmpl-") and r["object"] == "text_completion"
    assert isinstance(r["created"], int) and r["model"] == model_name
    (c,) = r["choices"]
    assert set(c) == {"text", "index", "logprobs", "finish_reason"}
    assert isinstance(c["text"], str) and c["index"] == 0 and c["logprobs"] is None
    assert c["finish_reason"] in ("stop", "length")
    check_usage(r["usage"])


def test_completion_shape(chat_model):
    r = chat_model.create_completion("hello", max_tokens=6, temperature=0)
    check_completion(r)
    assert r["usage"]["prompt_tokens"] == len(chat_model.tokenize("hello"))
    assert r["usage"]["completion_tokens"] == 6 and r["choices"][0]["finish_reason"] == "length"
    assert chat_model("hello", max_tokens=6, temperature=0)["choices"] == r["choices"]


def test_completion_stream_shape(chat_model):
    chunks = list(chat_model.create_completion("hello", max_tokens=6, temperature=0, stream=True))
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("cmpl-")
    for c in chunks:
        assert set(c) == {"id", "object", "created", "model", "choices"}
        assert c["object"] == "text_completion"
        (ch,) = c["choices"]
        assert set(ch) == {"text", "index", "logprobs", "finish_reason"}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    full = chat_model.create_completion("hello", max_tokens=6, temperature=0)
    assert "".join(c["choices"][0]["text"] for c in chunks) == full["choices"][0]["text"]


def test_completion_options(chat_model):
    ids = chat_model.tokenize("hello")
    r = chat_model.create_completion(ids, max_tokens=4, temperature=0, echo=True, model="m")
    check_completion(r, "m")
    assert r["choices"][0]["text"].startswith("hello")
    base = chat_model.create_completion("hello", max_tokens=8, temperature=0)["choices"][0]["text"]
    stop = base[3:5]
    r = chat_model.create_completion("hello", max_tokens=8, temperature=0, stop=stop)
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["choices"][0]["text"] == base[:base.index(stop)]
    a = chat_model.create_completion("hello", max_tokens=8, temperature=1.0, seed=42)
    b = chat_model.create_completion("hello", max_tokens=8, temperature=1.0, seed=42)
    assert a["choices"][0]["text"] == b["choices"][0]["text"]
    r = chat_model.create_completion("hi", max_tokens=None, temperature=0,
                                     logit_bias={"106": 100.0})  # OpenAI-style string keys
    assert r["choices"][0]["finish_reason"] == "stop" and r["usage"]["completion_tokens"] == 0
    # llama-cpp-python arguments at their "off" values are accepted ...
    chat_model.create_completion("hi", max_tokens=1, frequency_penalty=0.0, presence_penalty=0.0,
                                 typical_p=1.0, mirostat_mode=0, grammar=None, logprobs=None)
    # ... but not switched on, and unknown names are TypeErrors
    with pytest.raises(gemma3n.ArgumentError, match="frequency_penalty"):
        chat_model.create_completion("hi", max_tokens=1, frequency_penalty=0.5)
    with pytest.raises(TypeError, match="temprature"):
        chat_model.create_completion("hi", temprature=0.5)


def check_chat(r):
    assert set(r) == {"id", "object", "created", "model", "choices", "usage"}
    assert r["id"].startswith("chatcmpl-") and r["object"] == "chat.completion"
    (c,) = r["choices"]
    assert set(c) == {"index", "message", "logprobs", "finish_reason"}
    assert c["message"]["role"] == "assistant" and isinstance(c["message"]["content"], str)
    assert c["index"] == 0 and c["logprobs"] is None and c["finish_reason"] in ("stop", "length")
    check_usage(r["usage"])


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]


def test_chat_shape_and_prompt(chat_model):
    r = chat_model.create_chat_completion(MESSAGES, max_tokens=5, temperature=0)
    check_chat(r)
    prompt = gemma3n.format_chat(MESSAGES)
    assert prompt == ("<bos><start_of_turn>user\nBe brief.\n\nhello<end_of_turn>\n"
                      "<start_of_turn>model\n")
    ids = chat_model.tokenize(prompt, add_bos=False, special=True)
    assert r["usage"]["prompt_tokens"] == len(ids)
    same = chat_model.create_completion(ids, max_tokens=5, temperature=0)
    assert r["choices"][0]["message"]["content"] == same["choices"][0]["text"]
    parts = [{"role": "user", "content": [{"type": "text", "text": "hel"},
                                          {"type": "text", "text": "lo"}]}]
    assert gemma3n.format_chat(parts) == gemma3n.format_chat([{"role": "user", "content": "hello"}])


def test_chat_ends_at_end_of_turn(chat_model):
    r = chat_model.create_chat_completion(MESSAGES, max_tokens=5, temperature=0,
                                          logit_bias={106: 100.0})
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["choices"][0]["message"]["content"] == ""


def test_chat_stream_shape(chat_model):
    chunks = list(chat_model.create_chat_completion(MESSAGES, max_tokens=5, temperature=0,
                                                    stream=True))
    for c in chunks:
        assert set(c) == {"id", "model", "created", "object", "choices"}
        assert c["object"] == "chat.completion.chunk" and c["id"].startswith("chatcmpl-")
        (ch,) = c["choices"]
        assert set(ch) == {"index", "delta", "logprobs", "finish_reason"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    middle = chunks[1:-1]
    assert middle and all(set(c["choices"][0]["delta"]) == {"content"} for c in middle)
    text = "".join(c["choices"][0]["delta"]["content"] for c in middle)
    full = chat_model.create_chat_completion(MESSAGES, max_tokens=5, temperature=0)
    assert text == full["choices"][0]["message"]["content"]


def test_chat_bad_messages(chat_model):
    with pytest.raises(TypeError):
        chat_model.create_chat_completion("hello")
    with pytest.raises(TypeError):
        chat_model.create_chat_completion([{"role": "user", "content": 5}])
    with pytest.raises(gemma3n.ArgumentError, match="image_url"):
        chat_model.create_chat_completion([{"role": "user", "content": [{"type": "image_url"}]}])
    with pytest.raises(gemma3n.ArgumentError):
        chat_model.create_chat_completion([{"role": "robot", "content": "hi"}])
    with pytest.raises(gemma3n.ArgumentError):
        chat_model.create_chat_completion([])
    with pytest.raises(gemma3n.ArgumentError):
        gemma3n.chat_format([{"role": "user", "content": "a\x00b"}])


def test_completion_errors_raise_at_call_time(chat_model, tiny_a):
    with pytest.raises(gemma3n.ArgumentError):
        chat_model.create_completion([], stream=True)  # empty prompt: raised before iterating
    with pytest.raises(gemma3n.ContextOverflowError):
        chat_model.create_completion([2] * 5000, stream=True)
    with pytest.raises(gemma3n.StateError, match="tokenizer"):
        tiny_a.create_completion("text needs a tokenizer")
    with pytest.raises(TypeError):
        chat_model.create_completion(3.5)
