#!/usr/bin/env python3
"""Streams a text completion token by token, then prints the finish reason.

    python3 examples/python/stream_completion.py MODEL_DIR [-p PROMPT] [--max-tokens N]

Two ways are shown: the Session iterator (explicit state, one text piece per
token) and llama-cpp-python's create_completion(stream=True) chunks. Ctrl-C
stops the generation at once (KeyboardInterrupt).
"""
import argparse
import sys
import time

import gemma3n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="model directory (config.json, *.safetensors, tokenizer.json)")
    ap.add_argument("-p", "--prompt", default="The capital of France is")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    with gemma3n.Model(args.model) as model:
        # 1. A session: evaluate the prompt, then iterate over the pieces.
        with model.session(temperature=args.temperature, seed=args.seed) as session:
            start = time.perf_counter()
            gen = session.generate(args.prompt, max_tokens=args.max_tokens)
            sys.stdout.write(args.prompt)
            for piece in gen:
                sys.stdout.write(piece)
                sys.stdout.flush()
            elapsed = time.perf_counter() - start
            print(f"\n[{len(gen.tokens)} tokens, finish_reason={gen.finish_reason}, "
                  f"{len(gen.tokens) / elapsed:.1f} tok/s]")

        # 2. The same with llama-cpp-python's chunk dictionaries.
        for chunk in model.create_completion(args.prompt, max_tokens=args.max_tokens,
                                             temperature=args.temperature, seed=args.seed,
                                             stream=True):
            choice = chunk["choices"][0]
            sys.stdout.write(choice["text"])
            sys.stdout.flush()
            if choice["finish_reason"] is not None:
                print(f"\n[finish_reason={choice['finish_reason']}]")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\n[interrupted]")
        sys.exit(130)
    except gemma3n.Error as e:
        sys.exit(f"error: {e}")
