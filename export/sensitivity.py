"""Which nodes cost the most accuracy when quantized, and which few to leave in float.

Per-node sensitivity: quantize that one node (everything else float) and measure the cosine of
the result to the float graph on probe texts. The probe texts come from the build texts
(`GateSplit.distill`), never from the gate texts, so the gate still measures unseen texts. The
nodes are then left float worst-first until the fully quantized graph meets the probe target
(a margin above the gate), at most `MAX_EXCLUDED` of them: a float node costs speed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from export.gates import cosine_stats
from export.variant_dir import MODEL_FILE

log = logging.getLogger("export")
PROBE_TARGET = {"mean_cosine": 0.993, "min_cosine": 0.986}  # the gate is 0.99 / 0.98
MAX_EXCLUDED = 6
PROBE_TEXTS = 96  # the worst texts of the fully quantized graph + as many random ones

Quantize = Callable[[Path, list[str] | None, list[str] | None], None]  # (out, exclude, only)


def candidate_nodes(model_file: Path, op_types: list[str]) -> list[dict[str, str]]:
    """The nodes the quantizer will touch: `op_types`, with a constant weight (MatMul's B,
    Gather's table); activation x activation MatMuls are left float anyway (MatMulConstBOnly)."""
    import onnx

    graph = onnx.load(str(model_file)).graph
    consts = {t.name for t in graph.initializer}
    consts |= {n.output[0] for n in graph.node if n.op_type == "Constant"}
    out = []
    for node in graph.node:
        if node.op_type not in op_types:
            continue
        if node.op_type == "MatMul" and node.input[1] not in consts:
            continue
        if node.op_type == "Gather" and node.input[0] not in consts:
            continue
        out.append({"node": node.name, "op": node.op_type})
    return out


def probe_texts(texts: list[str], cosines: np.ndarray, seed: int = 0) -> list[int]:
    """Indices of the `PROBE_TEXTS // 2` worst texts plus as many others, seeded."""
    half = PROBE_TEXTS // 2
    worst = [int(i) for i in np.argsort(cosines)[:half]]
    rest = [i for i in range(len(texts)) if i not in set(worst)]
    return worst + random.Random(seed).sample(rest, min(half, len(rest)))


def meets(metrics: dict[str, float], target: dict[str, float] | None = None) -> bool:
    return all(metrics[k] >= v for k, v in (target or PROBE_TARGET).items())


def rank_nodes(
    src: Path,
    nodes: list[dict[str, str]],
    quantize: Quantize,
    encode: Callable[[Path], np.ndarray],
    reference: np.ndarray,
    work: Path,
) -> list[dict[str, Any]]:
    """Each node quantized alone: its cosine to the float graph on the probe; worst first."""
    from tqdm.auto import tqdm

    ranking = []
    for item in tqdm(nodes, desc=f"sensitivity of {src.name}", unit="node"):
        out = work / "one"
        quantize(out, None, [item["node"]])
        stats = cosine_stats(encode(out), reference)
        ranking.append({**item, **{k: round(stats[k], 6) for k in ("mean_cosine", "min_cosine")}})
        (out / MODEL_FILE).unlink()
    return sorted(ranking, key=lambda r: (r["min_cosine"], r["mean_cosine"]))


def choose_exclusions(
    src: Path,
    op_types: list[str],
    quantize: Quantize,
    encode_probe: Callable[[Path, list[int] | None], np.ndarray],
    work: Path,
) -> tuple[list[str], dict[str, Any]]:
    """Nodes to leave float (maybe none), and the record of how they were chosen.

    `quantize(out, exclude, only)` writes a variant folder; `encode_probe(folder, idx)` embeds
    the build texts (all of them when idx is None, else those indices)."""
    reference_all = encode_probe(src, None)
    full = work / "full"
    quantize(full, [], None)
    cos = (encode_probe(full, None) * reference_all).sum(axis=1)
    idx = probe_texts(list(range(len(cos))), cos)
    reference = reference_all[idx]
    full_stats = cosine_stats(encode_probe(full, idx), reference)
    record: dict[str, Any] = {"probe_texts": len(idx), "target": PROBE_TARGET, "trials": []}
    record["trials"].append({"excluded": [], **_round(full_stats)})
    if meets(full_stats):
        log.info("%s: all nodes quantized meet the probe target %s", src.name, _round(full_stats))
        return [], record
    nodes = candidate_nodes(src / MODEL_FILE, op_types)
    ranking = rank_nodes(
        src, nodes, quantize, lambda folder: encode_probe(folder, idx), reference, work
    )
    record["ranking"] = ranking
    best: tuple[list[str], dict[str, float]] = ([], full_stats)
    for k in range(1, min(MAX_EXCLUDED, len(ranking)) + 1):
        excluded = [r["node"] for r in ranking[:k]]
        trial = work / f"minus{k}"
        quantize(trial, excluded, None)
        stats = cosine_stats(encode_probe(trial, idx), reference)
        record["trials"].append({"excluded": excluded, **_round(stats)})
        log.info("%s: %d node(s) float -> probe %s", src.name, k, _round(stats))
        if stats["min_cosine"] > best[1]["min_cosine"]:
            best = (excluded, stats)
        if meets(stats):
            return excluded, record
    return best[0], record


def _round(stats: dict[str, float]) -> dict[str, float]:
    return {k: round(stats[k], 6) for k in ("mean_cosine", "min_cosine")}
