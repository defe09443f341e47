"""Quality vs speed vs size of every encoder: NDCG@10 (recommenders, cold_start) beside the
latency of the encoder benchmark (batch 32 x 64 tokens) and the model size; one table and one
scatter plot with the Pareto front (faster and better is up and to the left).

    python -m benchmarks.quality     (after benchmarks.encoder; reads artifacts/export_report.json)

NDCG sources: our ONNX variants from export_report.json (the trained hybrid re-evaluated with
texts embedded by the variant) or, where the report lacks them, measured here the same way
(rec_models.train.evaluate_with_encoder, cached in .cache/benchmarks/); PyTorch fp32 from
artifacts/metrics.json (the hybrid as trained); sentence-transformers' torch and onnx backends
compute the same function as PyTorch fp32 (cosine 1.000 in the encoder run), so they inherit
its NDCG; its dynamic-int8 model is measured here through the same hook.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from benchmarks.engines import OURS, ST_DIR, quant_preset
from benchmarks.machine import ARTIFACTS, RESULTS, ROOT, Run, read_result

KEYS = ("ndcg@10", "cold_start_ndcg@10")
CACHE = ROOT / ".cache" / "benchmarks"


def latency_by_variant(encoder: dict | None, batch: int = 32, length: int = 64) -> dict:
    if not encoder:
        return {}
    cells = [c for c in encoder["cells"] if c["batch"] == batch and c["length"] == length]
    if not cells:  # another grid: the largest batch of the longest length measured
        b = max(c["batch"] for c in encoder["cells"])
        n = max(c["length"] for c in encoder["cells"] if c["batch"] == b)
        cells = [c for c in encoder["cells"] if c["batch"] == b and c["length"] == n]
    return {c["variant"]: c for c in cells}


def measured_ndcg(name: str, folder: Path) -> tuple[dict[str, float] | None, str]:
    """NDCG of an OnnxEncoder variant folder through the trainer's hook, cached by the model
    file and the trained models (metrics.json)."""
    metrics = ARTIFACTS / "metrics.json"
    if not (ARTIFACTS / "models" / "cold_start" / "hybrid").is_dir() or not metrics.is_file():
        return None, "no trained hybrid (make train)"
    model = folder / "model.onnx"
    key = f"{model.stat().st_size}-{model.stat().st_mtime_ns}-{metrics.stat().st_mtime_ns}"
    cache = CACHE / f"ndcg_{name}.json"
    if cache.is_file() and (hit := json.loads(cache.read_text())).get("key") == key:
        return hit["ndcg"], "measured here (cached)"
    from rec_models.serving.onnx_encoder import OnnxEncoder
    from rec_models.train import evaluate_with_encoder

    enc = OnnxEncoder(folder)
    ndcg = evaluate_with_encoder(ARTIFACTS, enc.encode, enc.count_tokens)
    ndcg = {k: float(v) for k, v in ndcg.items()}
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "ndcg": ndcg}))
    return ndcg, "measured here"


def st_int8_folder() -> Path | None:
    """sentence-transformers' own ONNX-int8 model as an OnnxEncoder variant folder."""
    model = ST_DIR / "onnx" / f"model_qint8_{quant_preset()}.onnx"
    if not model.is_file():
        return None
    folder = CACHE / "st_onnx_int8_variant"
    folder.mkdir(parents=True, exist_ok=True)
    if (
        not (folder / "model.onnx").is_file()
        or (folder / "model.onnx").stat().st_size != model.stat().st_size
    ):
        shutil.copy2(model, folder / "model.onnx")
    shutil.copy(ST_DIR / "tokenizer.json", folder / "tokenizer.json")
    config = {
        "variant": "st_onnx_int8",
        "dim": 384,
        "max_length": 128,
        "pooling": "mean",
        "normalize": True,
        "gpu_only": False,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _safe_ndcg(name: str, folder: Path | None) -> tuple[dict[str, float] | None, str]:
    if folder is None:
        return None, "run benchmarks.encoder first (it exports the model)"
    try:
        return measured_ndcg(name, folder)
    except Exception as exc:  # the hook or the models are missing: say why
        return None, f"{type(exc).__name__}: {exc}"


def quality_rows() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """NDCG per encoder: the export report's where it has them, else measured here."""
    rows: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    report_path = ARTIFACTS / "export_report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {"variants": {}}
    for v in OURS:
        folder = ARTIFACTS / "onnx" / v.removeprefix("ort_")
        r = report["variants"].get(v.removeprefix("ort_"), {})
        if r.get("ndcg@10") is not None:
            rows[v] = {k: r.get(k) for k in (*KEYS, "size_mb", "mean_cosine")}
            notes[v] = "export_report.json"
        elif (folder / "model.onnx").is_file():
            ndcg, notes[v] = _safe_ndcg(v, folder)
            rows[v] = dict(ndcg or {})
    metrics_path = ARTIFACTS / "metrics.json"
    if metrics_path.is_file():
        protocols = json.loads(metrics_path.read_text()).get("protocols", {})
        torch_q = {
            "ndcg@10": protocols.get("recommenders", {}).get("hybrid", {}).get("ndcg@10"),
            "cold_start_ndcg@10": protocols.get("cold_start", {}).get("hybrid", {}).get("ndcg@10"),
        }
        for name in ("pytorch_fp32", "st_torch", "st_onnx"):
            rows[name] = dict(torch_q) | {"mean_cosine": 1.0}
        notes["pytorch_fp32"] = "artifacts/metrics.json (the hybrid as trained)"
        notes["st_torch/st_onnx"] = "same function as PyTorch fp32: its NDCG"
    ndcg, notes["st_onnx_int8"] = _safe_ndcg("st_onnx_int8", st_int8_folder())
    if ndcg:
        rows["st_onnx_int8"] = dict(ndcg)
    return rows, notes


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """Names not dominated: nothing else is both at least as fast and at least as good."""
    front = []
    for name, ms, q in points:
        if not any(m2 <= ms and q2 >= q and (m2, q2) != (ms, q) for _, m2, q2 in points):
            front.append(name)
    return front


def plot(rows: dict[str, dict[str, Any]], path: Path) -> dict[str, list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    fronts = {}
    for ax, key in zip(axes, KEYS, strict=True):
        pts = [
            (n, r["median_ms"], r[key])
            for n, r in rows.items()
            if r.get("median_ms") and r.get(key) is not None
        ]
        fronts[key] = pareto(pts)
        for name, ms, q in pts:
            mine = name.startswith("ort_")
            ax.scatter(
                ms,
                q,
                s=30 + (rows[name].get("size_mb") or 20),
                alpha=0.7,
                color="tab:blue" if mine else "tab:gray",
            )
            ax.annotate(name, (ms, q), fontsize=7, xytext=(4, 3), textcoords="offset points")
        front = sorted((ms, q) for n, ms, q in pts if n in fronts[key])
        ax.step(
            [f[0] for f in front],
            [f[1] for f in front],
            "r--",
            where="post",
            lw=1,
            label="Pareto front",
        )
        ax.set(xscale="log", xlabel="median ms per batch (32 texts x 64 tokens)", ylabel=key)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Encoder quality vs latency (marker area ~ model size)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fronts


def run(full: bool = False) -> dict[str, Any]:
    run_ = Run("quality", full)
    rows, notes = quality_rows()
    encoder = read_result("encoder")
    lat = latency_by_variant(encoder)
    for name, cell in lat.items():
        if cell.get("kind") == "control":  # a thread-count control, not an encoder choice
            continue
        row = rows.setdefault(name, {})
        row |= {
            "median_ms": cell["median_ms"],
            "texts_per_s": cell["texts_per_s"],
            "speedup_vs_pytorch": cell["speedup_vs_pytorch"],
        }
        if row.get("size_mb") is None and encoder:
            row["size_mb"] = encoder["engines"].get(name, {}).get("size_mb")
    RESULTS.mkdir(parents=True, exist_ok=True)
    fronts = plot(rows, RESULTS / "quality_vs_latency.png") if lat else {}
    cell = next(iter(lat.values()), {})
    result = {
        "latency_cell": {"batch": cell.get("batch"), "length": cell.get("length")},
        "rows": rows,
        "notes": notes,
        "pareto": fronts,
    }
    run_.save(result)
    return result


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="accepted for symmetry (no grid)")
    run(parser.parse_args().full)


if __name__ == "__main__":
    main()
