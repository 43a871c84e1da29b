"""OpenAI / llama-cpp-python shaped results of create_completion and
create_chat_completion: the same keys and nesting as llama_cpp.llama_types
(CreateCompletionResponse, CreateChatCompletionResponse and their stream
chunks), so code written for llama-cpp-python reads them unchanged.
"""
import time
import uuid
from typing import Any, Dict, Iterable, Iterator, Optional

__all__ = ["completion_id", "completion", "completion_chunk", "chat_completion",
           "chat_chunks", "usage"]


def completion_id() -> str:
    return f"cmpl-{uuid.uuid4()}"


def usage(prompt_tokens: int, completion_tokens: int) -> Dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion(cid: str, model: str, text: str, finish_reason: Optional[str],
               prompt_tokens: int, completion_tokens: int) -> Dict[str, Any]:
    """{"id", "object": "text_completion", "created", "model", "choices": [...], "usage"}"""
    return {"id": cid, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None,
                         "finish_reason": finish_reason}],
            "usage": usage(prompt_tokens, completion_tokens)}


def completion_chunk(cid: str, created: int, model: str, text: str,
                     finish_reason: Optional[str]) -> Dict[str, Any]:
    """One streamed piece: a completion without "usage" (as llama-cpp-python streams)."""
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None,
                         "finish_reason": finish_reason}]}


def chat_completion(result: Dict[str, Any]) -> Dict[str, Any]:
    """A text completion as a chat completion (llama-cpp-python's
    _convert_text_completion_to_chat)."""
    choice = result["choices"][0]
    return {"id": "chat" + result["id"], "object": "chat.completion",
            "created": result["created"], "model": result["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": choice["text"]},
                         "logprobs": None, "finish_reason": choice["finish_reason"]}],
            "usage": result["usage"]}


def _chat_chunk(cid: str, created: int, model: str, delta: Dict[str, str],
                finish_reason: Optional[str]) -> Dict[str, Any]:
    return {"id": "chat" + cid, "model": model, "created": created,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish_reason}]}


def chat_chunks(chunks: Iterable[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    """Completion chunks as chat chunks (llama-cpp-python's
    _convert_text_completion_chunks_to_chat): a first {"role": "assistant"}
    delta, one {"content": piece} delta per piece, and a final empty delta
    carrying finish_reason."""
    for i, chunk in enumerate(chunks):
        cid, created, model = chunk["id"], chunk["created"], chunk["model"]
        if i == 0:
            yield _chat_chunk(cid, created, model, {"role": "assistant"}, None)
        choice = chunk["choices"][0]
        if choice["finish_reason"] is None:
            yield _chat_chunk(cid, created, model, {"content": choice["text"]}, None)
        else:
            if choice["text"]:
                yield _chat_chunk(cid, created, model, {"content": choice["text"]}, None)
            yield _chat_chunk(cid, created, model, {}, choice["finish_reason"])
