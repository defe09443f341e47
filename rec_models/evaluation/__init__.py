"""Evaluation: ranking, CTR/calibration and beyond-accuracy metrics, and the metrics report."""

from __future__ import annotations

from rec_models.evaluation.metrics import (
    apply_platt,
    auc,
    catalog_coverage,
    ctr_metrics,
    expected_calibration_error,
    fit_platt,
    intra_list_diversity,
    logloss,
    novelty,
    ranking_metrics,
    topk_from_scores,
)
from rec_models.evaluation.report import format_table, print_summary, write_report

__all__ = [
    "apply_platt",
    "auc",
    "catalog_coverage",
    "ctr_metrics",
    "expected_calibration_error",
    "fit_platt",
    "format_table",
    "intra_list_diversity",
    "logloss",
    "novelty",
    "print_summary",
    "ranking_metrics",
    "topk_from_scores",
    "write_report",
]
