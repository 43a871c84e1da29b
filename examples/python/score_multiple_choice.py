#!/usr/bin/env python3
"""Answers a multiple-choice question by log-likelihood, as MMLU evaluations do.

    python3 examples/python/score_multiple_choice.py MODEL_DIR

Each answer's score is log p(answer | question), the sum of the
log-probabilities of its tokens. loglikelihood_batch evaluates the shared
question once and scores every answer from its KV cache.
"""
import argparse
import math
import sys

import gemma3n

QUESTION = """The following is a multiple choice question about astronomy.

Which planet is known as the Red Planet?
A. Venus
B. Mars
C. Jupiter
D. Mercury
Answer:"""
CHOICES = [" A", " B", " C", " D"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="model directory with tokenizer.json")
    ap.add_argument("--max-tokens", type=int, default=0, help="unused (smoke-test uniformity)")
    args = ap.parse_args()

    with gemma3n.Model(args.model) as model:
        scores = model.loglikelihood_batch([(QUESTION, c) for c in CHOICES])
    total = sum(math.exp(lp) for lp, _ in scores)
    print(QUESTION)
    for choice, (lp, greedy) in zip(CHOICES, scores):
        print(f"  {choice.strip()}: log p = {lp:8.3f}   p = {math.exp(lp) / total:6.1%}"
              f"{'   (greedy)' if greedy else ''}")
    best = max(range(len(CHOICES)), key=lambda i: scores[i][0])
    print(f"model's answer: {CHOICES[best].strip()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except gemma3n.Error as e:
        sys.exit(f"error: {e}")
