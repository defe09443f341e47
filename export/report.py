"""Step 7: `artifacts/export_report.{json,md}`: size, quality and speed of every variant."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from export.measure import speed_batch32
from export.variant_dir import MODEL_FILE, is_complete, read_config

COLUMNS = (
    "size_mb",
    "layers",
    "parameters",
    "mean_cosine",
    "min_cosine",
    "catalog_min_cosine",
    "generic_min_cosine",
    "ndcg@10",
    "cold_start_ndcg@10",
    "ndcg_drop_pct",
    "cold_start_drop_pct",
    "ms_batch32",
    "speedup_vs_fp32",
)


def variant_row(variant_dir: Path, artifacts: Path) -> dict[str, Any]:
    config = read_config(variant_dir)
    m = config.get("metrics", {})
    return {
        "path": os.path.relpath(variant_dir, artifacts.parent),
        "size_mb": round((variant_dir / MODEL_FILE).stat().st_size / 2**20, 2),
        "layers": config.get("layers"),
        "parameters": config.get("parameters"),
        "mean_cosine": m.get("mean_cosine"),
        "min_cosine": m.get("min_cosine"),
        "catalog_min_cosine": m.get("catalog_min_cosine"),
        "generic_min_cosine": m.get("generic_min_cosine"),
        "cosine_gated_on": m.get("cosine_gated_on"),
        "ndcg@10": m.get("ndcg@10"),
        "cold_start_ndcg@10": m.get("cold_start_ndcg@10"),
        "ndcg_drop_pct": m.get("ndcg_drop_pct", 0.0 if variant_dir.name == "fp32" else None),
        "cold_start_drop_pct": m.get(
            "cold_start_drop_pct", 0.0 if variant_dir.name == "fp32" else None
        ),
        "ms_batch32": None,
        "speedup_vs_fp32": None,
        "gpu_only": config.get("gpu_only", False),
        "gate": m,
    }


def build_report(
    artifacts: Path,
    variants: list[str],
    batch: list[str],
    failures: dict[str, str],
    extra: dict[str, Any],
) -> dict[str, Any]:
    onnx_dir = artifacts / "onnx"
    rows = {v: variant_row(onnx_dir / v, artifacts) for v in variants if is_complete(onnx_dir / v)}
    timed = {v: onnx_dir / v for v, row in rows.items() if not row["gpu_only"]}
    ms = speed_batch32(timed, batch) if timed else {}
    for v, value in ms.items():
        rows[v]["ms_batch32"] = round(value, 2)
    base = ms.get("fp32")
    for v, value in ms.items():
        rows[v]["speedup_vs_fp32"] = round(base / value, 2) if base else None
    if "int8" in ms and "distilled_int8" in ms:
        rows["distilled_int8"]["speedup_vs_int8"] = round(ms["int8"] / ms["distilled_int8"], 2)
    return {
        "variants": rows,
        "not_published": failures,
        "timing": {
            "batch": len(batch),
            "threads": len(os.sched_getaffinity(0)),
            "machine": platform.machine(),
            "note": "median of 15 interleaved rounds; "
            "fp16 is a GPU variant and is not timed on CPU",
        },
        **extra,
    }


DIGITS = {
    "size_mb": 1,
    "ms_batch32": 1,
    "speedup_vs_fp32": 2,
    "ndcg_drop_pct": 2,
    "cold_start_drop_pct": 2,
}


def _fmt(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{DIGITS.get(column, 4)}f}"
    if isinstance(value, int) and column == "parameters":
        return f"{value / 1e6:.2f}M"
    return str(value)


def _notes(report: dict[str, Any]) -> list[str]:
    rows, lines = report["variants"], []
    distilled = rows.get("distilled_int8", {})
    if distilled.get("speedup_vs_int8") is not None:
        lines.append(
            f"- distilled_int8 is {distilled['speedup_vs_int8']:.2f}x faster than int8 "
            "at batch 32 (target >= 2x); its NDCG@10 drop gate is <= 2%."
        )
    if distilled.get("gate", {}).get("distill_seconds") is not None:
        lines.append(
            f"- distillation took {distilled['gate']['distill_seconds']:.0f} s (when last built)."
        )
    for name, row in rows.items():
        gate = row.get("gate", {})
        if "smoothquant_alpha" in gate:
            lines.append(
                f"- {name}: SmoothQuant alpha {gate['smoothquant_alpha']}, nodes left float: "
                f"{gate.get('excluded_nodes') or 'none'} (chosen on build texts)."
            )
        if row.get("gate", {}).get("source_graph"):
            lines.append(
                f"- {name} was quantized from the {row['gate']['source_graph']} graph "
                f"(ms at batch 32 per candidate: "
                f"{row['gate'].get('candidates_ms_batch32')})."
            )
    for name, row in rows.items():
        note = row.get("gate", {}).get("ndcg_note")
        if note and note != "measured":
            lines.append(f"- {name} NDCG: {note}.")
    return lines


def write_report(report: dict[str, Any], artifacts: Path) -> Path:
    artifacts = Path(artifacts)
    (artifacts / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Encoder export report",
        "",
        "| variant | " + " | ".join(COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for name, row in report["variants"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(c, row.get(c)) for c in COLUMNS) + " |")
    lines += [
        "",
        "Cosines: to the PyTorch teacher on unseen texts: the held-out catalog slice (items and "
        "user profiles no build step used) and generic English sentences; mean/min cover what "
        "the variant is gated on (distilled_int8: the catalog only, a student of its texts). "
        "NDCG@10: the trained hybrid re-evaluated with texts embedded by the variant; "
        "drops are relative to fp32 (negative = better). ms_batch32: "
        + report["timing"]["note"]
        + ".",
        "",
        *_notes(report),
    ]
    if report.get("not_published"):
        lines += ["", "## Not published (gate failed)", ""]
        lines += [f"- {v}: {why}" for v, why in report["not_published"].items()]
    for key in ("ndcg_note", "openvino_bf16", "scorer", "store", "seconds"):
        if key in report:
            lines += ["", f"{key}: {json.dumps(report[key])}"]
    path = artifacts / "export_report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
