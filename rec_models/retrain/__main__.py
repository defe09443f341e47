"""python -m rec_models.retrain: retrain from the event log and publish a new scorer version.

    python -m rec_models.retrain [--config my.toml | --dataset NAME] [--artifacts artifacts]
        [--events artifacts/events/events.sqlite] [--ndcg-margin 0.01] [--auc-margin 0.01]

Without --config it retrains the served model's own configuration (artifacts/train_config.json,
its earlier logged snapshot dropped: the whole log is read again), or the defaults.
Exit status 0: a new version is published; 1: refused, the new model is worse than the current
version by more than a margin (one line says which metric); 2: bad input (event log,
configuration, data), one line. Never a traceback; on 1 and 2 the model store and artifacts/
are as they were.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from rec_models.config import ConfigError, TrainConfig, load_config
from rec_models.data import DataValidationError
from rec_models.retrain import Refused, RetrainError


def _config(args: argparse.Namespace) -> TrainConfig:
    served = Path(args.artifacts or "artifacts") / "train_config.json"
    if args.config:
        cfg = load_config(args.config)
    elif served.is_file() and not args.dataset:
        cfg = load_config(served)
    else:
        cfg = load_config(None)
    if args.dataset:
        from rec_models.train import apply_dataset

        apply_dataset(cfg, args.dataset)
    if args.artifacts:
        cfg.artifacts_dir = args.artifacts
    if args.ndcg_margin is not None:
        cfg.retrain.ndcg_margin = args.ndcg_margin
    if args.auc_margin is not None:
        cfg.retrain.auc_margin = args.auc_margin
    return cfg


def _print_result(result: dict) -> None:
    new_h = result["holdout"].get("new")
    if new_h:
        print(
            f"hold-out: {new_h['impressions']} impressions, {new_h['clicks']} clicks, "
            f"{new_h['responses_ranked']} responses re-ranked "
            f"({result['holdout'].get('left_out_clicked_before', 0)} left out: items the user "
            "had clicked before, which the new version never shows)"
        )
    for c in result["verdict"].comparisons:
        print(f"  {c.line()}")
    for name, why in result["verdict"].skipped.items():
        print(f"  not compared: {name}: {why}")
    kept = f" (kept: {result['parent']})" if result["parent"] else ""
    print(f"published {result['tag']}{kept} in {result['seconds']} s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m rec_models.retrain", description=__doc__)
    p.add_argument("--config", help="TOML file (default: artifacts/train_config.json)")
    p.add_argument("--dataset", help="a built-in dataset: movielens, obd, synthetic")
    p.add_argument("--artifacts", help="the artifacts folder (default: artifacts)")
    p.add_argument("--events", help="the event log (default: <artifacts>/events/events.sqlite)")
    p.add_argument("--ndcg-margin", type=float, help="retrain.ndcg_margin (default 0.01)")
    p.add_argument("--auc-margin", type=float, help="retrain.auc_margin (default 0.01)")
    args = p.parse_args(argv)
    # SIGTERM unwinds like an exception, so the staging folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        cfg = _config(args)
        artifacts = Path(cfg.artifacts_dir)
        events = args.events or cfg.retrain.events or artifacts / "events" / "events.sqlite"
        from rec_models.retrain.run import retrain

        result = retrain(cfg, Path(events), artifacts)
    except Refused as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(1)
    except (RetrainError, DataValidationError, ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    _print_result(result)


if __name__ == "__main__":
    main()
