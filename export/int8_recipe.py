"""The int8 recipe of one float graph, chosen on build texts: SmoothQuant alpha, then exclusions.

1. Each alpha in `ALPHAS` (None = no smoothing) is applied and the result quantized; the one
   whose probe cosine to the float graph is best (min first, then mean) is kept. Measured on this
   machine (generic sentences, O2 graph): min 0.960 without smoothing, 0.960 / 0.981 / 0.956 /
   0.875 at alpha 0.5 / 0.7 / 0.8 / 0.9: not monotonic, hence searched, not fixed.
2. If that graph still misses the probe target, its most sensitive nodes stay float
   (export/sensitivity.py).
The probe texts are build texts (catalog texts outside the gate's held-out slice, and the
calibration sentences), never gate texts: the gate measures the recipe on unseen texts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from export.gates import cosine_stats
from export.quantize import OPS_TO_QUANTIZE, quantize_int8
from export.sensitivity import choose_exclusions
from export.smooth import smooth_graph
from export.variant_dir import update_config

log = logging.getLogger("export")
ALPHAS: tuple[float | None, ...] = (None, 0.5, 0.6, 0.7, 0.75)


def int8_recipe(
    src: Path,
    out: Path,
    probe: list[str],
    preset: str,
    variant: str,
    work: Path,
    encode: Callable[[Path, list[str]], np.ndarray],
) -> dict[str, Any]:
    """Write the chosen int8 graph of `src` into `out`; returns the record of the choice.
    `encode(folder, texts)` embeds texts with a variant folder."""
    reference = encode(src, probe)
    trials: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], float | None, Path] | None = None
    for alpha in ALPHAS:
        graph = src if alpha is None else work / f"smooth-{alpha}"
        if alpha is not None:
            smooth_graph(src, graph, probe, alpha)
        candidate = work / f"int8-{alpha}"
        quantize_int8(graph, candidate, preset, variant=variant)
        stats = cosine_stats(encode(candidate, probe), reference)
        trials.append(
            {"alpha": alpha, **{k: round(stats[k], 6) for k in ("mean_cosine", "min_cosine")}}
        )
        log.info(
            "%s from %s: smoothquant alpha %s -> probe %s", variant, src.name, alpha, trials[-1]
        )
        key = (stats["min_cosine"], stats["mean_cosine"])
        if best is None or key > best[0]:
            best = (key, alpha, graph)
    assert best is not None
    _, alpha, graph = best

    def quantize(folder: Path, exclude: list[str] | None, only: list[str] | None) -> None:
        quantize_int8(graph, folder, preset, variant=variant, exclude=exclude, only=only)

    def encode_probe(folder: Path, idx: list[int] | None) -> np.ndarray:
        return encode(folder, probe if idx is None else [probe[i] for i in idx])

    excluded, sensitivity = choose_exclusions(graph, OPS_TO_QUANTIZE, quantize, encode_probe, work)
    quantize(out, excluded, None)
    record = {
        "probe_texts": len(probe),
        "smoothquant_trials": trials,
        "smoothquant_alpha": alpha,
        "excluded_nodes": excluded,
        "sensitivity": sensitivity,
    }
    update_config(out, int8_recipe=record)
    return record
