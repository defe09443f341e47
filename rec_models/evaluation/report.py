"""Write the evaluation results as metrics.json and a human-readable report.md.

metrics schema: {"dataset": str, "rows": "impressions" | "interactions",
                 "protocols": {protocol: {model: {"ndcg@10": float, ...}}},
                 "ctr": {model: {"auc", "logloss", "ece", "mean_predicted_ctr", "observed_ctr",
                                 ["auc_ci95": [lo, hi]]}},
                 ["cvr": like ctr], ["impression_ranking": {model: {"ndcg@10", ...}}],
                 ["reliability": {model: [{"lo", "hi", "count", "mean_predicted", "observed"}]}],
                 "beyond_accuracy": {model: {"coverage", "diversity", "novelty"}},
                 "evaluations": {name: what it measures}, "skipped": {name: why},
                 "meta": {...free-form...}}
Non-finite floats are written as null in JSON and as "-" in Markdown.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# NDCG@10 on MovieLens-100K measured with Microsoft Recommenders (recommenders-team/recommenders,
# examples/06_benchmarks: 75/25 python_stratified_split per user, seed 42, k = 10, seen items
# removed, ndcg_at_k as in rec_models.evaluation.ranking). Third-party numbers quoted for
# context; they are not re-run here.
PUBLISHED_NDCG_AT_10: dict[str, float] = {
    "random": 0.018,
    "popularity": 0.250,
    "SAR": 0.380,
    "BPR (cornac, 200 factors, 200 epochs)": 0.444,
    "BiVAE": 0.469,
    "EASE (lambda 500)": 0.480,
}
REFERENCE_TITLE = "Published references (same split, third-party libraries)"
REFERENCE_PROTOCOL = "recommenders"

Value = float | int | str | None


def _format_value(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.4f}" if math.isfinite(value) else "-"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def _columns_of(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Union of the rows' keys in order of first appearance."""
    return list(dict.fromkeys(key for row in rows.values() for key in row))


def format_table(
    rows: Mapping[str, Mapping[str, Value]],
    columns: Iterable[str] | None = None,
    index_name: str = "model",
) -> str:
    """A Markdown table: one row per key of rows, one column per name in columns.

    Floats get 4 decimals; missing, None and non-finite values render as "-".
    columns defaults to every key present, in order of first appearance.
    """
    columns = _columns_of(rows) if columns is None else list(columns)
    lines = [
        "| " + " | ".join([index_name, *columns]) + " |",
        "|" + "---|" + "---:|" * len(columns),
    ]
    for name, row in rows.items():
        cells = [_format_value(row.get(col)) for col in columns]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _reference_table(models: Mapping[str, Mapping[str, Value]]) -> str:
    """Published NDCG@10 beside ours; rows = references, then our models not among them."""
    names = list(dict.fromkeys([*PUBLISHED_NDCG_AT_10, *models]))
    rows = {
        name: {
            "NDCG@10 (published)": PUBLISHED_NDCG_AT_10.get(name),
            "NDCG@10 (ours)": models.get(name, {}).get("ndcg@10"),
        }
        for name in names
    }
    return format_table(rows)


def _json_safe(obj: Any) -> Any:
    """numpy scalars/arrays -> Python, NaN/inf -> None; anything else unserialisable is kept
    so that json.dumps raises on it."""
    if isinstance(obj, Mapping):
        return {key: _json_safe(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


CTR_COLUMNS = ["auc", "auc_ci95", "logloss", "ece", "mean_predicted_ctr", "observed_ctr"]


def _notes(metrics: Mapping[str, Any]) -> str:
    lines = [f"- `{name}`: {note}" for name, note in metrics.get("evaluations", {}).items()]
    skipped = [f"- `{name}`: {why}" for name, why in metrics.get("skipped", {}).items()]
    text = "## Evaluations\n\n" + "\n".join(lines) + "\n" if lines else ""
    return text + ("\n## Skipped\n\n" + "\n".join(skipped) + "\n" if skipped else "")


def render_report(metrics: Mapping[str, Any]) -> str:
    """The report.md text for a metrics dict (see the module docstring for the schema)."""
    parts = [f"# Evaluation report: {metrics.get('dataset', 'unknown dataset')}\n"]
    if metrics.get("rows"):
        parts.append(f"Rows read as: {metrics['rows']}.\n")
    if metrics.get("evaluations") or metrics.get("skipped"):
        parts.append(_notes(metrics))
    for protocol, models in metrics.get("protocols", {}).items():
        parts.append(f"## Ranking, protocol `{protocol}`\n\n{format_table(models)}")
        if protocol == REFERENCE_PROTOCOL and metrics.get("rows", "interactions") == "interactions":
            parts.append(f"### {REFERENCE_TITLE}\n\n{_reference_table(models)}")
    for key, title in (("ctr", "CTR and calibration"), ("cvr", "CVR (held-out clicks)")):
        if metrics.get(key):
            columns = [c for c in CTR_COLUMNS if any(c in r for r in metrics[key].values())]
            parts.append(f"## {title}\n\n{format_table(metrics[key], columns)}")
    if metrics.get("reliability"):
        parts.append("![reliability](reliability.png)\n")
    if metrics.get("impression_ranking"):
        table = format_table(metrics["impression_ranking"])
        parts.append(f"## Ranking among each user's held-out impressions\n\n{table}")
    if metrics.get("beyond_accuracy"):
        parts.append(f"## Beyond accuracy\n\n{format_table(metrics['beyond_accuracy'])}")
    if metrics.get("meta"):
        meta = json.dumps(_json_safe(metrics["meta"]), indent=2)
        parts.append(f"## Meta\n\n```json\n{meta}\n```\n")
    return "\n".join(parts)


def _atomic_write(path: Path, text: str) -> None:
    """Write text to a temp file beside path, then os.replace it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(metrics: Mapping[str, Any], out_dir: Path) -> None:
    """Write out_dir/metrics.json (indent 2) and out_dir/report.md, each atomically.

    Both texts are rendered before anything touches the disk, so an unserialisable value
    raises (TypeError) and leaves any previous files untouched.
    """
    out_dir = Path(out_dir)
    json_text = json.dumps(_json_safe(metrics), indent=2, allow_nan=False) + "\n"
    md_text = render_report(metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / "metrics.json", json_text)
    _atomic_write(out_dir / "report.md", md_text)


def print_summary(metrics: Mapping[str, Any]) -> None:
    """Print the `recommenders` protocol table (and the published references) to stdout."""
    models = metrics.get("protocols", {}).get(REFERENCE_PROTOCOL)
    if not models:
        print(f"no '{REFERENCE_PROTOCOL}' protocol in metrics")
        return
    print(f"{metrics.get('dataset', '')} - protocol {REFERENCE_PROTOCOL}")
    print(format_table(models))
    if metrics.get("rows", "interactions") == "interactions":
        print(REFERENCE_TITLE)
        print(_reference_table(models))
    if metrics.get("ctr"):
        print("CTR")
        columns = [c for c in CTR_COLUMNS if any(c in r for r in metrics["ctr"].values())]
        print(format_table(metrics["ctr"], columns))
    for name, why in metrics.get("skipped", {}).items():
        print(f"skipped {name}: {why}")
