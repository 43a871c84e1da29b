"""gemma3n.Model: the C Model plus the llama-cpp-python-shaped helpers.

The helpers (generate, create_completion, create_chat_completion, __call__,
loglikelihood) run on a session the Model keeps for them, so consecutive
calls reuse the KV cache of a shared prompt prefix, as llama-cpp-python's
Llama does. When that session is busy (another thread, or a stream still
being consumed) a call gets a fresh session instead of waiting, so helpers
never deadlock and are safe to call from several threads.
"""
import contextlib
import os
import random
import threading
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _gemma3n, chat, completion, scoring

__all__ = ["Model"]

Prompt = Union[str, bytes, Sequence[int]]


class _Helper:
    """One cached session for helper calls, and the lock saying it is taken."""

    def __init__(self, options: Dict[str, Any]):
        self.options = options
        self.lock = threading.Lock()
        self.session: Optional[_gemma3n.Session] = None


class Model(_gemma3n.Model):
    __doc__ = _gemma3n.Model.__doc__ + """

Helpers shaped like llama-cpp-python's Llama: generate() (token ids),
create_completion() / __call__() and create_chat_completion() (OpenAI-shaped
dicts, or chunk iterators with stream=True), loglikelihood() and
loglikelihood_batch() for evaluation. Use as a context manager or call close().
"""

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, n_threads: Optional[int] = None,
                 n_ctx: Optional[int] = None, **options: Any) -> None:
        super().__init__(path, n_threads=n_threads, n_ctx=n_ctx, **options)
        self.model_name = os.path.basename(os.path.normpath(os.fspath(path)))
        # Seeds of helper calls that give none: reproducible from Model(seed=...).
        seed = options.get("seed")
        self._rng = random.Random(0x5EED if seed is None else seed)
        self._helpers = {"generate": _Helper({}), "score": _Helper({"logits_all": True})}

    # ---- lifetime ----

    def close(self) -> None:
        """Closes the helper sessions, then releases the model (see _gemma3n.Model.close)."""
        for h in getattr(self, "_helpers", {}).values():
            if h.session is not None and h.lock.acquire(blocking=False):
                try:
                    h.session.close()
                    h.session = None
                finally:
                    h.lock.release()
        super().close()

    def __enter__(self) -> "Model":
        super().__enter__()
        return self

    @contextlib.contextmanager
    def _borrow(self, kind: str) -> Iterator[_gemma3n.Session]:
        if self.closed:
            raise _gemma3n.StateError("the model is closed")
        h = self._helpers[kind]
        if h.lock.acquire(blocking=False):
            try:
                if h.session is None or h.session.closed:
                    h.session = self.session(**h.options)
                yield h.session
            finally:
                if self.closed and h.session is not None:  # closed while we were busy
                    h.session.close()
                    h.session = None
                h.lock.release()
        else:
            with self.session(**h.options) as s:
                yield s

    def n_ctx(self) -> int:
        """Context size of the sessions this model creates by default."""
        with self._borrow("generate") as s:
            return s.n_ctx

    def _seed(self, seed: Optional[int]) -> int:
        return self._rng.getrandbits(63) if seed is None else seed

    def _prompt_ids(self, prompt: Prompt) -> List[int]:
        if isinstance(prompt, (str, bytes)):
            return self.tokenize(prompt, add_bos=True, special=True)
        if isinstance(prompt, Sequence) or hasattr(prompt, "__array__"):
            return [int(t) for t in prompt]
        raise TypeError(f"prompt must be str, bytes or a list of token ids, not {type(prompt).__name__}")

    # ---- token-level generation (llama-cpp-python's Llama.generate) ----

    def generate(self, tokens: Sequence[int], *, temp: Optional[float] = None,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 min_p: Optional[float] = None, repeat_penalty: Optional[float] = None,
                 reset: bool = True, **options: Any) -> Iterator[int]:
        """Yields generated token ids one at a time (llama-cpp-python's Llama.generate).

        The prompt `tokens` is evaluated (reusing the common prefix with the
        previous call when reset=True; reset=False appends them to it), then
        tokens are sampled until a stop token (yielded last, not added to the
        context), max_tokens (default: until the context is full) or the
        caller stops iterating. Other options: temperature (same as temp),
        seed, stop, ignore_eos, logit_bias, repeat_last_n. None means the
        Model's default.
        """
        ids = self._prompt_ids(tokens)
        opts = dict(temperature=temp, top_k=top_k, top_p=top_p, min_p=min_p,
                    repeat_penalty=repeat_penalty, max_tokens=-1)
        for name, value in options.items():  # temperature=... may stand for temp=...
            if value is not None or name not in opts:
                opts[name] = value
        opts["seed"] = self._seed(opts.get("seed"))
        with self._borrow("generate") as s:
            if reset:
                scoring.prime(s, ids)
            else:
                s.eval(ids)
            yield from s.generate(None, yield_ids=True, **opts)

    # ---- completions ----

    def _start(self, ids: List[int], opts: Dict[str, Any]) -> Iterator[Any]:
        """Generator: primes a helper session, yields its Generation, then the pieces."""
        with self._borrow("generate") as s:
            scoring.prime(s, ids)
            gen = s.generate(None, **opts)
            yield gen
            yield from gen

    def _completion_stream(self, cid: str, stream: Iterator[Any], gen: Any,
                           echo_text: Optional[str]) -> Iterator[Dict[str, Any]]:
        created = int(time.time())
        if echo_text:
            yield completion.completion_chunk(cid, created, self.model_name, echo_text, None)
        for piece in stream:
            if piece:
                yield completion.completion_chunk(cid, created, self.model_name, piece, None)
        yield completion.completion_chunk(cid, created, self.model_name, "", gen.finish_reason)

    def create_completion(self, prompt: Prompt, suffix: Optional[str] = None,
                          max_tokens: Optional[int] = 16, temperature: Optional[float] = None,
                          top_p: Optional[float] = None, min_p: Optional[float] = None,
                          echo: bool = False, stop: Union[str, List[str], None] = None,
                          repeat_penalty: Optional[float] = None, top_k: Optional[int] = None,
                          stream: bool = False, seed: Optional[int] = None,
                          logit_bias: Optional[Mapping[Union[int, str], float]] = None,
                          logprobs: Optional[int] = None, model: Optional[str] = None,
                          ignore_eos: Optional[bool] = None, **unsupported: Any) -> Any:
        """Text completion, llama-cpp-python's Llama.create_completion.

        Returns {"id", "object": "text_completion", "created", "model",
        "choices": [{"text", "index", "logprobs": None, "finish_reason"}],
        "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}},
        or with stream=True an iterator of such dicts (without "usage") with
        one piece each and a last one carrying finish_reason ("stop" or
        "length"). A str prompt is tokenized with <bos> and special tokens;
        max_tokens None or <= 0 means until a stop or a full context.
        Sampling options left None take the Model's defaults.
        """
        _reject_unsupported(suffix=suffix, logprobs=logprobs, **unsupported)
        ids = self._prompt_ids(prompt)
        opts = dict(max_tokens=-1 if max_tokens is None or max_tokens <= 0 else max_tokens,
                    temperature=temperature, top_p=top_p, min_p=min_p, top_k=top_k,
                    repeat_penalty=repeat_penalty, stop=stop, logit_bias=logit_bias,
                    ignore_eos=ignore_eos, seed=self._seed(seed))
        echo_text = None
        if echo:
            echo_text = prompt if isinstance(prompt, str) else self.detokenize(ids, skip_special=True)
        stream_it = self._start(ids, opts)
        gen = next(stream_it)  # the prompt is evaluated here: errors raise now
        cid, name = completion.completion_id(), model or self.model_name
        chunks = self._completion_stream(cid, stream_it, gen, echo_text)
        if stream:
            return chunks
        text = "".join(c["choices"][0]["text"] for c in chunks)
        return completion.completion(cid, name, text, gen.finish_reason, len(ids), len(gen.tokens))

    __call__ = create_completion

    def create_chat_completion(self, messages: Sequence[Mapping[str, Any]],
                               temperature: Optional[float] = None, top_p: Optional[float] = None,
                               top_k: Optional[int] = None, min_p: Optional[float] = None,
                               stream: bool = False, stop: Union[str, List[str], None] = None,
                               seed: Optional[int] = None, max_tokens: Optional[int] = None,
                               repeat_penalty: Optional[float] = None,
                               logit_bias: Optional[Mapping[Union[int, str], float]] = None,
                               model: Optional[str] = None, **unsupported: Any) -> Any:
        """Chat completion, llama-cpp-python's Llama.create_chat_completion.

        `messages` are OpenAI-style ({"role": "system"|"user"|"assistant",
        "content": str or [{"type": "text", "text": ...}]}), formatted with the
        Gemma 3n chat template. Returns {"id": "chatcmpl-...", "object":
        "chat.completion", "created", "model", "choices": [{"index", "message":
        {"role": "assistant", "content"}, "logprobs": None, "finish_reason"}],
        "usage"}, or with stream=True "chat.completion.chunk" dicts: a first
        {"role": "assistant"} delta, {"content": piece} deltas, and an empty
        delta with finish_reason. Generation ends at <end_of_turn>.
        """
        _reject_unsupported(**unsupported)
        prompt = chat.format_chat(messages, add_generation_prompt=True, add_bos=True)
        ids = self.tokenize(prompt, add_bos=False, special=True)
        result = self.create_completion(ids, max_tokens=max_tokens, temperature=temperature,
                                        top_p=top_p, min_p=min_p, top_k=top_k, stop=stop,
                                        stream=stream, seed=seed, repeat_penalty=repeat_penalty,
                                        logit_bias=logit_bias, model=model)
        if stream:
            return completion.chat_chunks(result)
        return completion.chat_completion(result)

    # ---- scoring ----

    def loglikelihood(self, context: Union[str, Sequence[int]],
                      continuation: Union[str, Sequence[int]]) -> Tuple[float, bool]:
        """(log p(continuation | context), whether every continuation token is greedy).

        Both are text (tokenized together as lm-eval does, with <bos>) or
        both token id lists (used as given; the context must not be empty).
        """
        return self.loglikelihood_batch([(context, continuation)])[0]

    def loglikelihood_batch(self, requests: Sequence[Tuple[Union[str, Sequence[int]],
                                                           Union[str, Sequence[int]]]]
                            ) -> List[Tuple[float, bool]]:
        """loglikelihood() of many (context, continuation) pairs, in order.

        A context shared by several continuations (the 4 answers of an MMLU
        question) is evaluated once: each continuation is scored from the
        cached context and the KV cache is truncated back to it.
        """
        pairs = [scoring.encode_pair(self, c, x) for c, x in requests]
        with self._borrow("score") as s:
            return scoring.score_pairs(s, pairs)


# llama-cpp-python arguments this engine accepts only at their "off" value
# (ANY: the value is irrelevant while the feature is off).
_ANY = object()
_LLAMA_OFF = {
    "suffix": None, "logprobs": None, "top_logprobs": None, "frequency_penalty": 0.0,
    "presence_penalty": 0.0, "typical_p": 1.0, "tfs_z": 1.0, "mirostat_mode": 0,
    "mirostat_tau": _ANY, "mirostat_eta": _ANY, "stopping_criteria": None,
    "logits_processor": None, "grammar": None, "functions": None, "function_call": None,
    "tools": None, "tool_choice": None, "response_format": None, "user": _ANY,
}


def _reject_unsupported(**kwargs: Any) -> None:
    for name, value in kwargs.items():
        if name not in _LLAMA_OFF:
            raise TypeError(f"unexpected keyword argument {name!r}")
        off = _LLAMA_OFF[name]
        if off is _ANY or value is None or value is False or value == off:
            continue
        if name == "response_format" and value == {"type": "text"}:
            continue
        raise _gemma3n.ArgumentError(f"{name}={value!r} is not supported by gemma3n")
