"""Publish or refuse: the new version against the current one, metric by metric.

Comparisons, each made only where both sides have the number:

- holdout ndcg@10 and holdout auc: both models on the same hold-out impressions (holdout.py),
  the like-for-like comparison on what users did after the current version was published;
- recorded ndcg@10: the primary protocol's hybrid NDCG@10 (`recommenders`, or the first one)
  as each version recorded it in its metadata when it was trained, each on its own data;
- recorded auc: the hybrid's CTR AUC likewise, only where both versions measured it on the
  same view (`ctr_view`: sampled non-clicks or real impressions), as the two views differ.

A comparison fails when new < current - margin (`retrain.ndcg_margin`, `retrain.auc_margin`);
one failure refuses the version. Too few clicked hold-out impressions
(`retrain.min_holdout_clicks`) skip the hold-out comparisons, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from rec_models.config import RetrainConfig


@dataclass(frozen=True)
class Comparison:
    name: str  # "holdout ndcg@10"
    new: float
    current: float
    margin: float

    @property
    def passed(self) -> bool:
        return self.new >= self.current - self.margin

    def line(self) -> str:
        sign = "ok" if self.passed else f"falls by more than {self.margin:g}"
        return f"{self.name} {self.current:.4f} -> {self.new:.4f} ({sign})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class Verdict:
    comparisons: list[Comparison]
    skipped: dict[str, str]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    @property
    def failed(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "skipped": self.skipped,
        }


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def recorded_metrics(report: dict[str, Any], k: int) -> dict[str, Any]:
    """What a version records about itself: the primary protocol's hybrid metrics, plus the
    hybrid's CTR AUC and the view it was measured on."""
    protocols = report.get("protocols") or {}
    primary = "recommenders" if "recommenders" in protocols else next(iter(protocols), None)
    out: dict[str, Any] = dict(protocols.get(primary, {}).get("hybrid", {})) if primary else {}
    out["protocol"] = primary
    ctr = (report.get("ctr") or {}).get("hybrid") or {}
    if "auc" in ctr:
        out["ctr_auc"] = ctr["auc"]
        sampled = "ctr_sampled" in report.get("evaluations", {})
        out["ctr_view"] = "sampled" if sampled else "impressions"
    return out


def judge(
    new_recorded: dict[str, Any],
    current_recorded: dict[str, Any],
    holdout: dict[str, Any],
    cfg: RetrainConfig,
    k: int,
) -> Verdict:
    comparisons: list[Comparison] = []
    skipped: dict[str, str] = {}
    ndcg = f"ndcg@{k}"
    new_h, cur_h = holdout.get("new"), holdout.get("current")
    if cur_h is None:
        skipped["holdout"] = holdout.get("note") or "no current version to score the hold-out"
    elif min(new_h["clicks"], cur_h["clicks"]) < cfg.min_holdout_clicks:
        skipped["holdout"] = (
            f"{cur_h['clicks']} clicked hold-out impressions, fewer than "
            f"retrain.min_holdout_clicks ({cfg.min_holdout_clicks})"
        )
    else:
        for key, margin in ((ndcg, cfg.ndcg_margin), ("auc", cfg.auc_margin)):
            if _finite(new_h[key], cur_h[key]):
                comparisons.append(Comparison(f"holdout {key}", new_h[key], cur_h[key], margin))
            else:
                skipped[f"holdout {key}"] = "undefined on this hold-out (no response to re-rank)"
    same_protocol = new_recorded.get("protocol") == current_recorded.get("protocol", "recommenders")
    if _finite(new_recorded.get(ndcg), current_recorded.get(ndcg)) and same_protocol:
        comparisons.append(
            Comparison(
                f"recorded {ndcg}", new_recorded[ndcg], current_recorded[ndcg], cfg.ndcg_margin
            )
        )
    else:
        skipped[f"recorded {ndcg}"] = "the current version records none on the same protocol"
    if not _finite(new_recorded.get("ctr_auc"), current_recorded.get("ctr_auc")):
        skipped["recorded auc"] = "not recorded by both versions"
    elif new_recorded.get("ctr_view") != current_recorded.get("ctr_view"):
        skipped["recorded auc"] = (
            f"measured on different views ({current_recorded.get('ctr_view')} vs "
            f"{new_recorded.get('ctr_view')} non-clicks)"
        )
    else:
        comparisons.append(
            Comparison(
                "recorded auc", new_recorded["ctr_auc"], current_recorded["ctr_auc"], cfg.auc_margin
            )
        )
    return Verdict(comparisons, skipped)


def refusal_line(verdict: Verdict, current_tag: str) -> str:
    worse = "; ".join(c.line() for c in verdict.failed)
    return f"refused: not published, worse than {current_tag}: {worse}"
