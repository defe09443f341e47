"""Real texts of an exact token length: item and profile texts from artifacts/texts.json, joined
and cut with the encoder's own tokenizer so every text has exactly `length` tokens ([CLS] and
[SEP] included) and a batch needs no padding."""

from __future__ import annotations

import json
import random
from pathlib import Path

from benchmarks.machine import ARTIFACTS


def load_pool(artifacts: Path = ARTIFACTS, seed: int = 0) -> list[str]:
    """Item and user profile texts, interleaved in a seeded order."""
    data = json.loads((artifacts / "texts.json").read_text())
    pool = list(data["items"]) + list(data["users"])
    random.Random(seed).shuffle(pool)
    return pool


def _tokenizer(tokenizer_json: Path):  # -> tokenizers.Tokenizer
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    return tok


def exact_length_texts(pool: list[str], length: int, count: int, tokenizer_json: Path) -> list[str]:
    """`count` distinct texts of exactly `length` tokens each (special tokens included)."""
    tok = _tokenizer(tokenizer_json)
    body = length - 2  # [CLS] ... [SEP]
    out: list[str] = []
    start = 0
    while len(out) < count:
        if start >= len(pool):
            raise ValueError(f"cannot build {count} texts of {length} tokens from the pool")
        text, j = "", start
        while len(tok.encode(text).ids) - 2 < body and j < len(pool):
            text = f"{text} {pool[j]}".strip()
            j += 1
        enc = tok.encode(text)
        # offsets of the tokens without the specials: cut after token number `body`
        end = enc.offsets[body][1] if len(enc.ids) - 2 >= body else len(text)
        cut = text[:end]
        if len(tok.encode(cut).ids) == length and cut not in out:
            out.append(cut)
            start = max(j, start + 1)  # the next text starts where this one stopped
        else:
            start += 1
    return out
