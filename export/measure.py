"""Measurements shared by gates and the report: teacher embeddings, NDCG with a variant, speed."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np


def teacher_embeddings(
    texts: list[str],
    model_path: str | Path | None = None,
    cache_dir: str | None = ".cache/embeddings",
) -> np.ndarray:
    """The PyTorch teacher's (N, d) embeddings (the on-disk cache `make train` filled)."""
    from rec_models.text.encoder import TextEncoder

    encoder = TextEncoder(model_path, cache_dir=cache_dir)
    return encoder.encode(texts, desc="teacher embeddings")


def ndcg_with_variant(artifacts_dir: Path, variant_dir: Path) -> tuple[dict | None, str]:
    """({"ndcg@10", "cold_start_ndcg@10"}, note) of the trained hybrid re-evaluated with texts
    embedded by the ONNX variant; (None, why) when the trainer's hook or models are missing."""
    if importlib.util.find_spec("rec_models.train") is None:
        return None, "rec_models.train is not installed"
    try:
        from rec_models.train import evaluate_with_encoder
    except ImportError as exc:
        return None, f"rec_models.train.evaluate_with_encoder not importable ({exc})"
    models = Path(artifacts_dir) / "models"
    needed = [models / p / "hybrid" for p in ("recommenders", "cold_start")]
    if not all(p.is_dir() for p in needed):
        return None, f"no trained hybrid under {models} (run `make train`)"
    from rec_models.serving.onnx_encoder import OnnxEncoder

    encoder = OnnxEncoder(variant_dir)
    result = evaluate_with_encoder(Path(artifacts_dir), encoder.encode, encoder.count_tokens)
    return {k: float(v) for k, v in result.items()}, "measured"


def teacher_ndcg(artifacts_dir: Path) -> dict[str, float] | None:
    """The PyTorch teacher's hybrid NDCG@10 from `make train`'s metrics.json (None if absent).
    fp32 and opt are parity-gated to <= 1e-4 on the embeddings, so this is their NDCG too
    (re-measuring fp32 gave the identical value) and saves two full re-evaluations."""
    import json

    path = Path(artifacts_dir) / "metrics.json"
    if not path.is_file():
        return None
    protocols = json.loads(path.read_text()).get("protocols", {})
    try:
        return {
            "ndcg@10": float(protocols["recommenders"]["hybrid"]["ndcg@10"]),
            "cold_start_ndcg@10": float(protocols["cold_start"]["hybrid"]["ndcg@10"]),
        }
    except (KeyError, TypeError):
        return None


def speed_batch32(
    variant_dirs: dict[str, Path], batch: list[str], rounds: int = 15, threads: int | None = None
) -> dict[str, float]:
    """Median ms to encode `batch` (32 texts) per variant, rounds interleaved across variants
    so background load hits all of them alike."""
    from rec_models.serving.onnx_encoder import OnnxEncoder

    encoders = {name: OnnxEncoder(path, threads=threads) for name, path in variant_dirs.items()}
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for enc in encoders.values():  # warm-up: first runs allocate
        enc.encode(batch)
        enc.encode(batch)
    for _ in range(rounds):
        for name, enc in encoders.items():
            t0 = time.perf_counter()
            enc.encode(batch)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def drop_pct(value: float | None, baseline: float | None) -> float | None:
    """Relative drop in percent (positive = worse than the baseline)."""
    if value is None or not baseline:
        return None
    return 100.0 * (baseline - value) / baseline
