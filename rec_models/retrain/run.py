"""One retraining: event log -> train -> hold-out comparison -> gate -> export -> publish."""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_models.config import TrainConfig
from rec_models.data.events import has_impressions
from rec_models.data.logged import canonical_logged, write_logged
from rec_models.pipeline import Context, build_context
from rec_models.retrain import Refused, RetrainError
from rec_models.retrain.gate import Verdict, judge, recorded_metrics, refusal_line
from rec_models.retrain.holdout import compare_on_holdout
from rec_models.retrain.publish import promote_and_publish, publish_scorer, staging_dir
from rec_models.retrain.snapshot import Snapshot, read_snapshot
from rec_models.serving.store import SCORER_NAME
from rec_models.versions import ScorerVersion, current_version, next_version_name

LOGGED_FILE = "logged.csv"


def calibrate(staging: Path, calibration: dict[str, Any] | None) -> None:
    """The served hybrid's click probabilities from the hold-out's logged impressions (the
    training's own CTR view splits the merged rows by time, so on a dataset older than its log
    it calibrates on the dataset's rows, all positives, not on real impressions)."""
    if calibration is None:
        return
    path = staging / "models" / "state.json"
    state = json.loads(path.read_text())
    state["calibration"]["hybrid"] = [calibration["a"], calibration["b"]]
    state["calibration_fitted_on"] = calibration["fitted_on"]
    path.write_text(json.dumps(state, indent=2))


def default_protocols(interactions) -> list[str]:
    """The protocols `make train` ran on the dataset before any logged impression joined it,
    so a retrained version is measured as its predecessor was."""
    extra = ["cold_user"] if has_impressions(interactions) else []
    return ["recommenders", "temporal", "cold_start", *extra]


def logged_split_line(fate: dict[str, int]) -> str:
    """What the recorded protocols did with the log (rec_models/data/logged_split.py)."""
    n = fate.get("logged_rows", 0)
    return (
        "recorded protocols: the dataset's own rows, split and trained on as the current "
        f"version was; the {n} logged impressions left out of them (the version that served "
        "them saw every test row), in the served model and the hold-out comparison only"
    )


def _finite_only(value: Any) -> Any:
    """Metadata without NaN/inf (an undefined metric is left out, not stored as NaN)."""
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items() if not _is_nan(v)}
    if isinstance(value, list):
        return [_finite_only(v) for v in value if not _is_nan(v)]
    return value


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _relocate(file: Path, staging: Path, final: Path) -> None:
    """Rewrite the staging folder's path to the final one inside a JSON artifact."""
    text = file.read_text()
    file.write_text(text.replace(json.dumps(str(staging))[1:-1], json.dumps(str(final))[1:-1]))


@dataclass
class Inputs:
    """What the log and the store give before any training."""

    cfg: TrainConfig  # data.logged cleared, protocols pinned
    base: Context  # the dataset without logged rows
    snap: Snapshot
    held: np.ndarray  # (n,) bool over snap's rows: the hold-out
    current: ScorerVersion | None
    events: dict[str, Any]  # the log's summary, for the metadata


def prepare(cfg: TrainConfig, events: Path) -> Inputs:
    if cfg.encoder.finetune:
        raise RetrainError(
            "config: encoder.finetune = true would change the encoder, and make retrain keeps "
            "the served encoder; fine-tune with make train + make export instead"
        )
    cfg = copy.deepcopy(cfg)
    cfg.data.logged = ""  # the whole log is read again: it holds every earlier snapshot's rows
    base = build_context(cfg)
    snap = read_snapshot(events, base)
    if not cfg.protocols:
        cfg.protocols = default_protocols(base.dataset.interactions)
    try:
        current = current_version(SCORER_NAME)
    except ValueError as exc:  # a store version whose files fail their sha256
        raise RetrainError(f"model store: current {SCORER_NAME} version: {exc}") from None
    held = snap.holdout_mask(cfg.retrain.holdout_share)
    summary = snap.summary() | {
        "holdout_impressions": int(held.sum()),
        "holdout_from": float(snap.served_ts[held].min()) if held.any() else None,
    }
    return Inputs(cfg, base, snap, held, current, summary)


def evaluate(
    inp: Inputs, staging: Path, say: Callable[[str], None]
) -> tuple[TrainConfig, dict[str, Any], dict[str, Any], dict[str, Any], Verdict]:
    """Train into `staging`, compare on the hold-out, judge: (train config, report, hold-out
    comparison, recorded metrics, verdict)."""
    from rec_models.train import train

    cfg, snap, held = inp.cfg, inp.snap, inp.held
    train_cfg = copy.deepcopy(cfg)
    train_cfg.data.logged = str(write_logged(snap.frame, staging / LOGGED_FILE))
    train_cfg.artifacts_dir = str(staging)
    report = train(train_cfg)
    say(logged_split_line(report.get("logged_split", {})))
    alpha = float(report["meta"]["alpha"])
    say("fitting without the hold-out, and scoring it with the new and the current version")
    logged = canonical_logged(snap.frame)
    holdout = compare_on_holdout(
        train_cfg, inp.base, logged[~held], logged[held], snap.request_ids[held], alpha,
        inp.current,
    )  # fmt: skip
    recorded = recorded_metrics(report, cfg.k)
    if inp.current is None:
        verdict = Verdict([], {"all": f"no {SCORER_NAME} version in the store yet"})
    else:
        verdict = judge(recorded, inp.current.metrics, holdout, cfg.retrain, cfg.k)
    return train_cfg, report, holdout, recorded, verdict


def retrain(
    cfg: TrainConfig, events: Path, artifacts: Path, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Retrain from the log at `events`; publish into the store and artifacts/ only if the gate
    passes (Refused otherwise). Returns the summary (what the command prints, as data)."""
    t0 = time.perf_counter()
    inp = prepare(cfg, events)
    current, summary = inp.current, inp.events
    say(
        f"event log {events}: {len(inp.snap.frame)} impressions of known users, "
        f"{summary['clicks']} clicks, {summary['conversions']} conversions "
        f"({inp.snap.cold_impressions} of cold profiles left out); hold-out: the latest "
        f"{summary['holdout_impressions']} impressions"
    )
    artifacts = Path(artifacts)
    staging = staging_dir(artifacts)
    try:
        train_cfg, report, holdout, recorded, verdict = evaluate(inp, staging, say)
        if not verdict.passed:
            assert current is not None
            raise Refused(refusal_line(verdict, current.tag))
        from export.scorer import export_scorer

        calibrate(staging, holdout.get("calibration"))
        export_scorer(staging, train_cfg)
        for name in ("train_config.json", "metrics.json"):
            _relocate(staging / name, staging, artifacts)
        metadata = _finite_only(
            {
                "model": "hybrid",
                "metrics": recorded,
                "holdout": holdout,
                "gate": verdict.to_dict(),
                "parent": current.tag if current else None,
                "events": summary,
                "logged_split": report.get("logged_split", {}),
                "alpha": report["meta"]["alpha"],
                "retrain_seconds": round(time.perf_counter() - t0, 1),
            }
        )
        labels = {"source": "retrain", "parent": current.version if current else ""}
        version, scorer = next_version_name(SCORER_NAME), artifacts / "onnx" / "scorer"
        tag = promote_and_publish(
            staging,
            artifacts,
            lambda: publish_scorer(scorer, metadata, labels, version, SCORER_NAME),
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "tag": tag,
        "parent": current.tag if current else None,
        "verdict": verdict,
        "holdout": holdout,
        "recorded": {"new": recorded, "current": current.metrics if current else {}},
        "events": summary,
        "seconds": round(time.perf_counter() - t0, 1),
    }
