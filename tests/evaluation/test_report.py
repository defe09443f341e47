"""metrics.json / report.md writing, table formatting and the published reference table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rec_models.evaluation import report
from rec_models.evaluation.report import (
    PUBLISHED_NDCG_AT_10,
    format_table,
    print_summary,
    write_report,
)


def _ranking(ndcg: float) -> dict[str, float]:
    return {
        "ndcg@10": ndcg,
        "precision@10": ndcg / 2,
        "recall@10": 0.1,
        "map": 0.05,
        "map@10": 0.06,
        "hr@10": 0.7,
    }


def _metrics() -> dict:
    models = {"random": 0.02, "popularity": 0.25, "mf": 0.41, "attention": 0.39, "hybrid": 0.43}
    return {
        "dataset": "ml-100k",
        "protocols": {
            "recommenders": {name: _ranking(v) for name, v in models.items()},
            "temporal": {name: _ranking(v / 2) for name, v in models.items()},
            "cold_start": {"popularity": _ranking(0.1), "hybrid": {"ndcg@10": 0.2}},
        },
        "ctr": {
            "mf": {
                "auc": 0.8,
                "logloss": 0.5,
                "ece": 0.02,
                "mean_predicted_ctr": 0.5,
                "observed_ctr": 0.55,
            },
            "hybrid": {"auc": np.float32(0.81), "logloss": 0.49},
        },
        "beyond_accuracy": {"mf": {"coverage": 0.3, "diversity": 0.6, "novelty": 9.1}},
        "meta": {"alpha": 0.4, "timings_s": {"mf": 12.5}, "config": {"k": 10}},
    }


def test_format_table_four_decimals_and_missing() -> None:
    rows = {"a": {"x": 0.123456, "y": float("nan")}, "b": {"y": 1, "z": None}}
    assert format_table(rows, ["x", "y", "z"]) == (
        "| model | x | y | z |\n|---|---:|---:|---:|\n| a | 0.1235 | - | - |\n| b | - | 1 | - |\n"
    )
    assert format_table(rows).splitlines()[0] == "| model | x | y | z |"


def test_write_report_writes_json_and_markdown(tmp_path: Path) -> None:
    metrics = _metrics()
    write_report(metrics, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["protocols"]["recommenders"]["mf"]["ndcg@10"] == 0.41
    assert saved["ctr"]["hybrid"]["auc"] == pytest.approx(0.81)  # numpy scalar converted
    assert (tmp_path / "out" / "metrics.json").read_text().startswith('{\n  "dataset"')

    md = (tmp_path / "out" / "report.md").read_text()
    for protocol in ("recommenders", "temporal", "cold_start"):
        assert f"protocol `{protocol}`" in md
    assert "| model | ndcg@10 | precision@10 | recall@10 | map | map@10 | hr@10 |" in md
    assert "| hybrid | 0.2000 | - | - | - | - | - |" in md  # cold_start row with one metric
    assert "| model | auc | logloss | ece | mean_predicted_ctr | observed_ctr |" in md
    assert "| hybrid | 0.8100 | 0.4900 | - | - | - |" in md
    assert "| mf | 0.3000 | 0.6000 | 9.1000 |" in md
    assert '"alpha": 0.4' in md


def test_reference_table_rows(tmp_path: Path) -> None:
    write_report(_metrics(), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "### Published references (same split, third-party libraries)" in md
    assert "| model | NDCG@10 (published) | NDCG@10 (ours) |" in md
    assert "| random | 0.0180 | 0.0200 |" in md
    assert "| popularity | 0.2500 | 0.2500 |" in md
    assert "| SAR | 0.3800 | - |" in md
    assert "| BPR (cornac, 200 factors, 200 epochs) | 0.4440 | - |" in md
    assert "| BiVAE | 0.4690 | - |" in md
    assert "| EASE (lambda 500) | 0.4800 | - |" in md
    assert "| hybrid | - | 0.4300 |" in md
    assert md.count("Published references") == 1  # only under the recommenders protocol
    assert len(PUBLISHED_NDCG_AT_10) == 6


def test_non_finite_values_become_null(tmp_path: Path) -> None:
    metrics = {"dataset": "x", "protocols": {"recommenders": {"mf": {"ndcg@10": float("nan")}}}}
    write_report(metrics, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["protocols"]["recommenders"]["mf"]["ndcg@10"] is None


def test_unserialisable_value_leaves_no_partial_file(tmp_path: Path) -> None:
    bad = _metrics()
    bad["meta"]["model"] = object()
    with pytest.raises(TypeError):
        write_report(bad, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / "metrics.json").exists()
    assert not (tmp_path / "fresh" / "report.md").exists()

    write_report(_metrics(), tmp_path)
    old_json = (tmp_path / "metrics.json").read_text()
    old_md = (tmp_path / "report.md").read_text()
    with pytest.raises(TypeError):
        write_report(bad, tmp_path)
    assert (tmp_path / "metrics.json").read_text() == old_json
    assert (tmp_path / "report.md").read_text() == old_md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "report.md"]


def test_failed_replace_removes_temp_file(tmp_path: Path, monkeypatch) -> None:
    write_report(_metrics(), tmp_path)
    old_json = (tmp_path / "metrics.json").read_text()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", broken_replace)
    changed = _metrics()
    changed["dataset"] = "other"
    with pytest.raises(OSError, match="disk full"):
        write_report(changed, tmp_path)
    monkeypatch.setattr(report.os, "replace", os.replace)
    assert (tmp_path / "metrics.json").read_text() == old_json
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "report.md"]


def test_print_summary(capsys: pytest.CaptureFixture[str]) -> None:
    print_summary(_metrics())
    out = capsys.readouterr().out
    assert "| mf | 0.4100 | 0.2050 |" in out
    assert "| SAR | 0.3800 | - |" in out
    print_summary({"dataset": "x", "protocols": {}})
    assert "no 'recommenders' protocol" in capsys.readouterr().out


def test_click_log_report_names_evaluations_and_skips(tmp_path: Path) -> None:
    metrics = {
        "dataset": "ads",
        "rows": "impressions",
        "protocols": {"recommenders": {"mf": _ranking(0.3)}},
        "ctr": {"mf": {"auc": 0.71, "auc_ci95": [0.65, 0.77], "logloss": 0.3, "l2": 0.01}},
        "reliability": {
            "mf": [{"lo": 0.0, "hi": 0.1, "count": 9, "mean_predicted": 0.05, "observed": 0.04}]
        },
        "impression_ranking": {"mf": {"ndcg@10": 0.6}},
        "evaluations": {"ctr_impressions": "time-ordered held-out impressions"},
        "skipped": {"cvr": "no conversions in the log"},
    }
    write_report(metrics, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Rows read as: impressions." in md
    assert "- `ctr_impressions`: time-ordered held-out impressions" in md
    assert "## Skipped" in md and "- `cvr`: no conversions in the log" in md
    assert "| mf | 0.7100 | [0.6500, 0.7700] | 0.3000 |" in md  # the l2 is not a CTR column
    assert "![reliability](reliability.png)" in md and "held-out impressions" in md
    assert "Published references" not in md  # MovieLens' references only for its reading
