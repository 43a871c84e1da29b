#!/usr/bin/env python3
"""Per-token overhead of the Python binding over the C core (a benchmark, not a test).

The same greedy generation (same prompt, same number of tokens, so the same
context lengths and the same ids) is timed
  - in C: `gemma3n generate --json -v`, whose timing line covers only the
    gm_session_next loop (no process start, no model load);
  - in Python: Session.generate iterated as ids, as text pieces, and through
    create_completion(stream=True) chunk dicts.
The difference per token is what the binding adds (GIL release/reacquire,
busy guard, signal check, str/int/dict creation). Best of --repeat runs.

    PYTHONPATH=build-py/python:python /usr/bin/python3 bench/bench_python_overhead.py \
        [--model tests/data/golden/text_tiny_a] [--cli build-py/gemma3n] [--tokens 256]

The tiny model makes the core's own per-token time small, so the overhead
shows up as a visible fraction; on a real checkpoint it is negligible.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

import gemma3n

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_cli(explicit):
    for c in [explicit, os.environ.get("GEMMA3N_CLI")] + [
            os.path.join(ROOT, d, "gemma3n") for d in ("build-py", "build")]:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def time_cli(cli, model_dir, prompt, n):
    """(seconds spent in the generation loop, generated ids) from the CLI."""
    proc = subprocess.run([cli, "generate", "-m", model_dir, "--tokens", ",".join(map(str, prompt)),
                           "-n", str(n), "--temp", "0", "--ignore-eos", "--json", "-v"],
                          capture_output=True, text=True, check=True)
    m = re.search(r"generated (\d+) tokens in ([0-9.]+) s", proc.stderr)
    if not m:
        raise RuntimeError(f"no timing line in the CLI's stderr: {proc.stderr!r}")
    return float(m.group(2)), json.loads(proc.stdout)["ids"]


def time_python(model, prompt, n, mode):
    """(seconds spent iterating the generation, generated ids)."""
    with model.session() as s:
        s.eval(prompt)
        if mode == "completion":
            start = time.perf_counter()
            for _ in model.create_completion(prompt, max_tokens=n, temperature=0, ignore_eos=True,
                                             stream=True):
                pass
            return time.perf_counter() - start, None
        gen = s.generate(None, max_tokens=n, temperature=0, ignore_eos=True,
                         yield_ids=(mode == "ids"))
        start = time.perf_counter()
        for _ in gen:
            pass
        return time.perf_counter() - start, gen.tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "tests", "data", "golden", "text_tiny_a"))
    ap.add_argument("--cli", help="the gemma3n CLI (default: build-py/ or build/)")
    ap.add_argument("--tokens", type=int, default=256, help="tokens to generate")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    ids_file = os.path.join(args.model, "input_ids.npy")
    prompt = np.load(ids_file)[0].tolist() if os.path.exists(ids_file) else [2, 10, 20, 30]
    n = args.tokens
    cli = find_cli(args.cli)
    modes = [("ids", "Python Session.generate(yield_ids)"),
             ("text", "Python Session.generate (text pieces)"),
             ("completion", "Python create_completion(stream=True)")]
    best = {}
    c_ids = None
    if not cli:
        print("no gemma3n CLI found (--cli): showing Python timings only", file=sys.stderr)
    with gemma3n.Model(args.model) as model:
        for mode, _ in modes:  # warm-up: page in the weights, start BLAS threads
            time_python(model, prompt, n, mode)
        for _ in range(args.repeat):  # interleaved, so drifts hit every variant alike
            if cli:
                t, c_ids = time_cli(cli, args.model, prompt, n)
                best["cli"] = min(best.get("cli", t), t)
            for mode, label in modes:
                t, py_ids = time_python(model, prompt, n, mode)
                best[mode] = min(best.get(mode, t), t)
                if py_ids is not None and c_ids is not None and py_ids != c_ids:
                    print(f"warning: {label} generated other ids than the CLI", file=sys.stderr)
    rows = ([("C core (CLI generate loop)", best["cli"])] if cli else []) + [
        (label, best[mode]) for mode, label in modes]
    base = rows[0][1] if cli else None
    print(f"model {os.path.basename(os.path.normpath(args.model))}, prompt {len(prompt)} tokens, "
          f"{n} generated tokens, best of {args.repeat}")
    print(f"{'':40s} {'us/token':>10s} {'overhead':>10s}")
    for label, t in rows:
        per = t / n * 1e6
        extra = "" if base is None else f"{(t - base) / n * 1e6:+9.1f}us ({(t / base - 1) * 100:+.1f}%)"
        print(f"{label:40s} {per:10.1f} {extra}")


if __name__ == "__main__":
    main()
