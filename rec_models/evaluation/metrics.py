"""All evaluation metrics in one namespace: ranking, CTR/calibration and beyond-accuracy.

The implementations live in small modules by role (ranking.py, ctr.py, beyond_accuracy.py);
import from here.
"""

from __future__ import annotations

from rec_models.evaluation.beyond_accuracy import catalog_coverage, intra_list_diversity, novelty
from rec_models.evaluation.ctr import (
    apply_platt,
    auc,
    ctr_metrics,
    expected_calibration_error,
    fit_platt,
    logloss,
)
from rec_models.evaluation.ranking import ranking_metrics, topk_from_scores

__all__ = [
    "apply_platt",
    "auc",
    "catalog_coverage",
    "ctr_metrics",
    "expected_calibration_error",
    "fit_platt",
    "intra_list_diversity",
    "logloss",
    "novelty",
    "ranking_metrics",
    "topk_from_scores",
]
