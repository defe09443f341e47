"""The encoder as serving and bulk encoding call it: padding and thread settings.

Padding: the same real texts (their natural lengths, no cutting) encoded in batches of 32 either
in arrival order, each batch padded to its longest text, or sorted by length first, as the
serving batcher's length buckets and a bulk catalog refresh send them. Threads: ONNX Runtime
intra-op threads 1 (serving: one core per worker) and all cores (bulk), each with the thread
pool's spin-waiting on and off, at batch 1 x 16 tokens (a cold profile) and 32 x 64 (bulk).
Rounds interleave the engines of a cell, as in encoder.py; medians.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.engines import Engine
from benchmarks.machine import ARTIFACTS, THREADS
from benchmarks.stats import ratio, summarize

PAD_BATCH = 32
PAD_TEXTS = 256  # 8 batches of real texts
THREAD_SHAPES = ((1, 16), (32, 64))


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, budget_s: float
) -> dict[str, list[float]]:
    """ms per call of each fn, rounds rotated across fns, until `budget_s` after 3 rounds."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {n: [] for n in fns}
    names = list(fns)
    start = time.perf_counter()
    for r in range(rounds):
        if r >= 3 and time.perf_counter() - start > budget_s:
            break
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(0.005)  # let the previous engine's spinning threads park
            t0 = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def padding_cells(
    engines: list[Engine], pool: list[str], count_tokens: Callable[[str], int], budget_s: float
) -> dict[str, Any]:
    """ms per 32 texts, padded (arrival order) vs length-sorted batches, per engine."""
    texts = random.Random(3).sample(pool, min(PAD_TEXTS, len(pool)))
    tokens = [min(count_tokens(t), 128) for t in texts]
    arrival = [texts[i : i + PAD_BATCH] for i in range(0, len(texts), PAD_BATCH)]
    order = sorted(range(len(texts)), key=tokens.__getitem__)
    by_length = [
        [texts[i] for i in order[j : j + PAD_BATCH]] for j in range(0, len(texts), PAD_BATCH)
    ]

    def padded_tokens(batches: list[list[str]]) -> int:
        return sum(len(b) * max(min(count_tokens(t), 128) for t in b) for b in batches)

    fns: dict[str, Callable[[], Any]] = {}
    for e in engines:
        for mode, batches in (("padded", arrival), ("length_sorted", by_length)):
            fns[f"{e.name}|{mode}"] = lambda e=e, batches=batches: [e.encode(b) for b in batches]
    times = interleaved(fns, rounds=200, budget_s=budget_s)
    n_batches = len(arrival)
    rows = []
    for e in engines:
        row: dict[str, Any] = {"variant": e.name}
        for mode in ("padded", "length_sorted"):
            s = summarize([t / n_batches for t in times[f"{e.name}|{mode}"]])
            row[f"{mode}_ms_per_32"] = s["median_ms"]
            row[f"{mode}_rounds"] = s["n"]
        row["speedup_sorted_vs_padded"] = ratio(
            row["padded_ms_per_32"], row["length_sorted_ms_per_32"]
        )
        rows.append(row)
    return {
        "texts": len(texts),
        "batch": PAD_BATCH,
        "real_tokens_per_text": round(float(np.mean(tokens)), 1),
        "padded_tokens_per_text": round(padded_tokens(arrival) / len(texts), 1),
        "sorted_tokens_per_text": round(padded_tokens(by_length) / len(texts), 1),
        "rows": rows,
    }


def thread_cells(
    variants: list[str], texts: dict[int, list[str]], budget_s: float
) -> list[dict[str, Any]]:
    """Median ms per call and texts/s per thread for threads x spinning, per variant and shape."""
    from rec_models.serving.onnx_encoder import OnnxEncoder

    out = []
    settings = [(t, s) for t in sorted({1, THREADS}) for s in (True, False)]
    for v in variants:
        folder = ARTIFACTS / "onnx" / v
        if not (folder / "model.onnx").is_file():
            continue
        encoders = {
            (t, s): OnnxEncoder(folder, threads=t, batch_size=PAD_BATCH, spinning=s)
            for t, s in settings
        }
        for b, n in THREAD_SHAPES:
            batch = texts[n][:b]
            fns = {
                f"{t}|{s}": (lambda enc=enc, batch=batch: enc.encode(batch))
                for (t, s), enc in encoders.items()
            }
            times = interleaved(fns, rounds=400 if b == 1 else 100, budget_s=budget_s)
            for t, s in settings:
                med = summarize(times[f"{t}|{s}"])
                out.append(
                    {
                        "variant": f"ort_{v}",
                        "batch": b,
                        "length": n,
                        "threads": t,
                        "spinning": s,
                        "median_ms": med["median_ms"],
                        "p99_ms": med["p99_ms"],
                        "ms_per_text": round(med["median_ms"] / b, 3),
                        "texts_per_s_per_thread": round(b / med["median_ms"] * 1e3 / t, 1),
                    }
                )
    return out
