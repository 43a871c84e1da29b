#!/usr/bin/env python3
"""Writes tiny_chat/tokenizer.json: a 512-entry tokenizer with the exact
structure of Gemma 3n's tokenizer.json (BPE + byte fallback, normalizer
" " -> "\u2581", Split pre-tokenizer, <bos> post-processor, Replace/ByteFallback/Fuse
decoder), so text-level code paths can be tested on the tiny golden weights
(vocab 512). Ids mirror Gemma where it matters: 0 <pad>, 1 <eos>, 2 <bos>,
3 <unk>, 105 <start_of_turn>, 106 <end_of_turn>. Deterministic; rerun to
regenerate."""
import json, os

vocab = {}
def add(tok):
    if tok not in vocab:
        vocab[tok] = len(vocab)

specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
for s in specials:
    add(s)
# base alphabet: the word-boundary mark and printable ASCII
add("\u2581")
for c in range(33, 127):
    add(chr(c))
add("\n")
# pad to 105 with control-looking unused tokens
while len(vocab) < 105:
    add(f"<unused{len(vocab)}>")
add("<start_of_turn>")
add("<end_of_turn>")
# merges: frequent English pieces built from pairs that already exist
pieces = ["\u2581t", "he", "\u2581a", "in", "er", "an", "on", "\u2581the", "\u2581s", "re", "at", "en", "or",
          "\u2581w", "\u2581o", "is", "it", "\u2581b", "\u2581c", "ou", "es", "ed", "\u2581f", "\u2581m", "\u2581p",
          "ing", "\u2581h", "\u2581d", "ar", "al", "\u2581to", "\u2581of", "\u2581in", "\u2581and", "\u2581is",
          "le", "ll", "\u2581I", "\u2581T", "\u2581y", "\u2581you", "lo", "\u2581he", "\u2581hello", "or", "ld",
          "\u2581world", "\u2581l", "\u2581n", "\u2581g", "\u2581e", "\u2581r", "\u2581u", "\u2581A", "\u2581W"]
merges = []
for p in pieces:
    if p in vocab:
        continue
    # split at the longest existing prefix whose rest also exists
    for k in range(len(p) - 1, 0, -1):
        a, b = p[:k], p[k:]
        if a in vocab and b in vocab:
            merges.append([a, b])
            add(p)
            break
while len(vocab) < 256:
    add(f"<unused{len(vocab)}>")
for b in range(256):
    add(f"<0x{b:02X}>")
assert len(vocab) == 512, len(vocab)

def added(tok, special):
    return {"id": vocab[tok], "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": special}

doc = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [added(t, True) for t in specials + ["<start_of_turn>", "<end_of_turn>"]],
    "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                  {"type": "ByteFallback"}, {"type": "Fuse"}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
              "vocab": vocab, "merges": merges},
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_chat", "tokenizer.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump(doc, f, ensure_ascii=False, indent=1)
print(out, len(vocab), "tokens,", len(merges), "merges")
