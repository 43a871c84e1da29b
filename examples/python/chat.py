#!/usr/bin/env python3
"""A multi-turn chat with streamed answers (Gemma 3n chat template).

    python3 examples/python/chat.py MODEL_DIR                 # interactive
    python3 examples/python/chat.py MODEL_DIR -m "Hi" -m "And you?"   # scripted turns

create_chat_completion(stream=True) yields OpenAI-style chunks; the model's
KV cache of the conversation so far is reused from one turn to the next.
"""
import argparse
import sys

import gemma3n


def ask(model, messages, args):
    """Streams one assistant answer and returns its text."""
    parts = []
    for chunk in model.create_chat_completion(messages, max_tokens=args.max_tokens,
                                              temperature=args.temperature, stream=True):
        delta = chunk["choices"][0]["delta"]
        if "content" in delta:
            parts.append(delta["content"])
            sys.stdout.write(delta["content"])
            sys.stdout.flush()
    print()
    return "".join(parts)


def turns(args):
    if args.message:
        for m in args.message:
            print(f"> {m}")
            yield m
        return
    while True:
        try:
            line = input("> ")
        except EOFError:
            return
        if line.strip() in ("/quit", "/exit"):
            return
        yield line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="model directory with tokenizer.json")
    ap.add_argument("-m", "--message", action="append", help="a user turn (repeatable)")
    ap.add_argument("--system", default="You are a concise assistant.")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.7)
    args = ap.parse_args()
    if not args.message and not sys.stdin.isatty():
        args.message = ["Hello!"]

    messages = [{"role": "system", "content": args.system}]
    with gemma3n.Model(args.model) as model:
        for text in turns(args):
            messages.append({"role": "user", "content": text})
            messages.append({"role": "assistant", "content": ask(model, messages, args)})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\n[interrupted]")
        sys.exit(130)
    except gemma3n.Error as e:
        sys.exit(f"error: {e}")
