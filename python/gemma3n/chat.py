"""Chat helpers: OpenAI-style messages -> the Gemma 3n prompt.

The template itself is in C (core/src/chat_template.c, exposed as
gemma3n.chat_format); this module only normalises what OpenAI / llama-cpp-python
clients send: `content` may be a string or a list of parts, of which only
{"type": "text"} parts are supported by this text-only engine.
"""
from typing import Any, Dict, List, Mapping, Sequence

from . import _gemma3n

__all__ = ["normalize_messages", "format_chat"]


def _content_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, (list, tuple)):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise _gemma3n.ArgumentError(
                    f"messages[{index}]: content part of type {kind!r} is not supported "
                    "(text-only model)")
        return "".join(texts)
    raise TypeError(f"messages[{index}]['content'] must be str or a list of parts, "
                    f"not {type(content).__name__}")


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> List[Dict[str, str]]:
    """[{'role': str, 'content': str}, ...] from OpenAI-style messages."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} mappings")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise TypeError(f"messages[{i}] must be a mapping, not {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str):
            raise TypeError(f"messages[{i}]['role'] must be str")
        out.append({"role": role, "content": _content_text(m.get("content"), i)})
    return out


def format_chat(messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True,
                add_bos: bool = True) -> str:
    """The Gemma 3n prompt text for `messages` (tokenize it with special=True, add_bos=False).

    >>> format_chat([{"role": "user", "content": "Hi"}])
    '<bos><start_of_turn>user\\nHi<end_of_turn>\\n<start_of_turn>model\\n'
    """
    return _gemma3n.chat_format(normalize_messages(messages), add_generation_prompt, add_bos)
