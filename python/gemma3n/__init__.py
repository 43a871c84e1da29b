"""gemma3n: Google's Gemma 3n models on the CPU, from Python.

    import gemma3n
    with gemma3n.Model("gemma-3n-E2B-it") as model:
        out = model.create_chat_completion([{"role": "user", "content": "Hi!"}])
        print(out["choices"][0]["message"]["content"])

        s = model.session(temperature=0)          # explicit state: KV cache, sampler
        for piece in s.generate("The sky is", max_tokens=32):
            print(piece, end="", flush=True)

        s.eval(model.tokenize("Hello"))            # NumPy in and out
        logits = s.logits                           # float32 [vocab], a copy

Objects: Model (weights, shared by threads), Session (one conversation,
one thread at a time), Generation (the iterator of Session.generate),
Tokenizer (a tokenizer.json alone). Errors derive from gemma3n.Error.
The C core releases the GIL while it works; Ctrl-C stops a generation.
"""
# The extension may live in another directory than these sources (a CMake
# build tree): let `gemma3n` span every such directory on sys.path.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from ._gemma3n import (  # noqa: E402
    MAX_STOP_STRINGS,
    ArgumentError,
    CancelledError,
    ContextOverflowError,
    Error,
    FileError,
    Generation,
    InternalError,
    ModelFormatError,
    OutOfMemoryError,
    Session,
    StateError,
    Tokenizer,
    __version__,
    chat_format,
    options,
)
from .chat import format_chat, normalize_messages  # noqa: E402
from .model import Model  # noqa: E402

__all__ = [
    "Model", "Session", "Generation", "Tokenizer",
    "Error", "ModelFormatError", "FileError", "ArgumentError", "ContextOverflowError",
    "StateError", "OutOfMemoryError", "CancelledError", "InternalError",
    "chat_format", "format_chat", "normalize_messages", "options", "MAX_STOP_STRINGS",
    "__version__",
]
