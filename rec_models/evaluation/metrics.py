"""All evaluation metrics in one namespace: ranking, CTR/calibration and beyond-accuracy.

The implementations live in small modules by role (ranking.py, ctr.py, beyond_accuracy.py);
import from here.
"""

from __future__ import annotations

from rec_models.evaluation.beyond_accuracy import catalog_coverage, intra_list_diversity, novelty
from rec_models.evaluation.ctr import (
    apply_platt,
    auc,
    auc_interval,
    ctr_metrics,
    expected_calibration_error,
    fit_platt,
    logloss,
    reliability_bins,
)
from rec_models.evaluation.ranking import ranking_metrics, topk_from_scores

__all__ = [
    "apply_platt",
    "auc",
    "auc_interval",
    "catalog_coverage",
    "ctr_metrics",
    "expected_calibration_error",
    "fit_platt",
    "intra_list_diversity",
    "logloss",
    "novelty",
    "ranking_metrics",
    "reliability_bins",
    "topk_from_scores",
]
