"""Shared fixtures of the Python binding tests.

Run through ctest (`ctest -L python`), which sets PYTHONPATH to the built
extension (<build>/python) and the package sources (python/); or by hand:
    PYTHONPATH=build-py/python:python /usr/bin/python3 -m pytest -q tests/python
"""
import os
import shutil
import subprocess

import numpy as np
import pytest

import gemma3n

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
GOLDEN = os.path.join(DATA, "golden")
TINY_CHAT = os.path.join(DATA, "tiny_chat")
# Text sets with the reference files these tests read (other kinds, e.g.
# matformer_tiny, have their own layout).
GOLDEN_SETS = sorted(d for d in os.listdir(GOLDEN)
                     if all(os.path.exists(os.path.join(GOLDEN, d, f))
                            for f in ("config.json", "input_ids.npy", "logits_prefill.npy",
                                      "generated_ids.npy", "input_ids_long.npy")))

LOGITS_TOL = 1e-3  # golden README: logits within 1e-3 absolute


def golden_path(name: str) -> str:
    return os.path.join(GOLDEN, name)


def load_golden(name: str, what: str) -> np.ndarray:
    return np.load(os.path.join(GOLDEN, name, what + ".npy"))


def full_tokenizer_dir():
    """The full Gemma tokenizer.json (+ reference_encodings.json) in tests/data."""
    d = os.path.join(DATA, "tokenizer")
    return d if os.path.exists(os.path.join(d, "tokenizer.json")) else None


def cli_with(command: str):
    """(path of a C CLI that has `command`, None) or (None, why not).

    ctest passes GEMMA3N_CLI; by hand the usual build dirs are tried. A CLI
    counts only if `gemma3n COMMAND --help` prints that command's usage."""
    candidates = [os.environ.get("GEMMA3N_CLI", "")]
    candidates += [os.path.join(ROOT, d, "gemma3n") for d in ("build-py", "build")]
    candidates.append(shutil.which("gemma3n") or "")
    found = [c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)]
    for c in found:
        try:
            p = subprocess.run([c, command, "--help"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if p.returncode == 0 and f"gemma3n {command}" in p.stdout:
            return c, None
    if not found:
        return None, "the C CLI (gemma3n) is not built"
    return None, f"no built C CLI has a `{command}` command yet (tried {', '.join(found)})"


@pytest.fixture(scope="session")
def tiny_a():
    """text_tiny_a: golden weights, no tokenizer (ids only)."""
    with gemma3n.Model(golden_path("text_tiny_a")) as m:
        yield m


@pytest.fixture(scope="session")
def chat_model():
    """tiny_chat: text_tiny_a weights + a 512-token Gemma-structured tokenizer."""
    with gemma3n.Model(TINY_CHAT) as m:
        yield m


@pytest.fixture(scope="session")
def prompt_ids():
    return [int(t) for t in load_golden("text_tiny_a", "input_ids")[0]]


def rss_bytes() -> int:
    """Resident set size now (not the peak), from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
