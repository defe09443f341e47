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
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from export import gates
from export.gates import cosine_stats
from export.measure import speed_batch32
from export.quantize import OPS_TO_QUANTIZE, count_quantized_nodes, quantize_int8
from export.sensitivity import choose_exclusions
from export.smooth import smooth_graph
from export.variant_dir import MODEL_FILE, read_config, scratch, update_config

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


def quantize_source(run: Any, src: Path, out: Path, variant: str, work: Path) -> dict:
    """Quantize one source graph into `out` with the recipe chosen on build texts
    (export/int8_recipe.py: SmoothQuant alpha, then the most sensitive nodes left float)."""
    from rec_models.serving.onnx_encoder import OnnxEncoder

    def encode(folder: Path, texts: list[str]) -> np.ndarray:
        return OnnxEncoder(folder).encode(texts)

    return int8_recipe(src, out, run.probe_texts(), run.preset, variant, work, encode)


FUSED_MARGIN = 0.10  # the plain graph must be this much faster to replace the fused one


def pick_source(ms: dict[str, float]) -> str:
    """The fused (O2) source unless another is >= 10% faster: on a shared 2-core machine the two
    have differed by noise (a few %), and the fused graph is the one the optimizer targets."""
    fastest = min(ms, key=ms.__getitem__)
    fused = next((n for n in ms if n.endswith("opt")), None)
    if fused is None or ms[fastest] <= (1 - FUSED_MARGIN) * ms[fused]:
        return fastest
    return fused


def quantize_best(run: Any, sources: list[Path], out: Path, variant: str) -> dict:
    """Quantize every source graph (O2, fp32), keep those that pass the cosine gate, and publish
    the fused one unless the plain one is >= 10% faster at batch 32 (`pick_source`; measured,
    not assumed) into `out` (the size and NDCG gates run afterwards in `build`)."""
    limits = {k: v for k, v in gates.THRESHOLDS[variant].items() if k.endswith("cosine")}
    passed: dict[str, tuple[Path, dict]] = {}
    failed: list[gates.GateFailed] = []
    with scratch(out.parent, f".{variant}-candidates-") as work:
        for src in sources:
            name = read_config(src)["variant"]
            candidate = work / name
            recipe = quantize_source(run, src, candidate, variant, work / f"{name}-probe")
            cosine = {
                **run.cosine_metrics(candidate),
                "smoothquant_alpha": recipe["smoothquant_alpha"],
                "excluded_nodes": recipe["excluded_nodes"],
            }
            try:
                gates.check(variant, cosine, limits)
            except gates.GateFailed as exc:
                log.warning("%s from the %s graph: %s", variant, name, exc)
                failed.append(exc)
                continue
            passed[name] = (candidate, cosine)
        if not passed:
            raise failed[0]
        ms = speed_batch32({n: c for n, (c, _) in passed.items()}, run.speed_batch(), rounds=8)
        best = pick_source(ms)
        log.info("%s: ms at batch 32 by source graph %s -> %s", variant, ms, best)
        for file in passed[best][0].iterdir():
            shutil.move(file, out / file.name)
    return {
        **passed[best][1],
        "quantized_nodes": count_quantized_nodes(out / MODEL_FILE),
        "source_graph": best,
        "candidates_ms_batch32": {n: round(v, 2) for n, v in ms.items()},
        "candidates_failed": [str(e) for e in failed],
    }
