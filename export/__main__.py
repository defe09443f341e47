"""`make export`: encoder variants -> gates -> scorer -> model store -> report.

python -m export [--artifacts artifacts] [--variants fp32,opt,int8,distilled_int8,fp16] [--force]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger("export")
REQUIRED = ("fp32", "opt", "int8")  # a gate failure here fails the command; the others are optional


def parse_variants(value: str) -> list[str]:
    from export.pipeline import VARIANTS

    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--variants: unknown {', '.join(unknown) or '(empty)'}; valid: {', '.join(VARIANTS)}"
        )
    return [v for v in VARIANTS if v in names]  # always in dependency order


def export_scorer_if_present(artifacts: Path) -> str:
    """The lead's scorer export (export/scorer.py), when it exists."""
    if importlib.util.find_spec("export.scorer") is None:
        return "skipped: export/scorer.py not present"
    from export.scorer import export_scorer

    return str(export_scorer(artifacts))


def publish_all(artifacts: Path, variants: list[str]) -> dict[str, str]:
    from export.store import publish
    from export.variant_dir import is_complete, read_config
    from rec_models.serving.store import SCORER_NAME, encoder_model_name

    tags: dict[str, str] = {}
    for variant in variants:
        folder = artifacts / "onnx" / variant
        if is_complete(folder):
            config = read_config(folder)
            meta = {
                k: config.get(k)
                for k in (
                    "variant",
                    "opset",
                    "dim",
                    "max_length",
                    "layers",
                    "parameters",
                    "gpu_only",
                )
            }
            tags[variant] = publish(
                folder, encoder_model_name(variant), {**meta, "metrics": config.get("metrics", {})}
            )
    scorer = artifacts / "onnx" / "scorer"
    if (scorer / "config.json").is_file():
        import json

        config = json.loads((scorer / "config.json").read_text())
        tags["scorer"] = publish(
            scorer,
            SCORER_NAME,
            {"model": config.get("model"), "metrics": config.get("metrics", {})},
        )
    return tags


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument(
        "--variants", type=parse_variants, default="fp32,opt,int8,distilled_int8,fp16"
    )
    parser.add_argument("--force", action="store_true", help="rebuild up-to-date variants too")
    args = parser.parse_args(argv)
    # our progress at INFO; the libraries' chatter (quantizer, fusions) only from WARNING up
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S"
    )
    log.setLevel(logging.INFO)
    from export.gates import GateFailed
    from export.pipeline import BUILDERS, VARIANTS, ExportRun, build
    from export.report import build_report, write_report
    from rec_models.artifact_publish import recover

    if recover(args.artifacts):  # a `make train` killed mid-publish: its artifacts, whole
        log.info("finished the publish of a training run killed after its commit point")
    t0 = time.perf_counter()
    run = ExportRun(args.artifacts, force=args.force)
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for i, variant in enumerate(args.variants, 1):
        log.info("[%d/%d] %s", i, len(args.variants), variant)
        t = time.perf_counter()
        try:
            build(run, variant, BUILDERS[variant])
        except GateFailed as exc:
            failures[variant] = str(exc)
            log.error("%s NOT published: %s", variant, exc)
        seconds[variant] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    scorer = export_scorer_if_present(args.artifacts)
    seconds["scorer"] = round(time.perf_counter() - t, 1)
    log.info("scorer: %s", scorer)
    tags = publish_all(args.artifacts, list(VARIANTS))
    if failures:
        from export.store import unpublish
        from rec_models.serving.store import encoder_model_name

        for variant in failures:
            unpublish(encoder_model_name(variant))
    log.info("model store: %s", ", ".join(tags.values()))
    openvino: dict[str, Any] = {"skipped": "fp32 not built"}
    if (run.target("fp32") / "model.onnx").is_file():
        from export.openvino import openvino_check

        openvino = openvino_check(run.target("fp32"), run.split.gate, run.teacher())
        log.info("fp32 under the OpenVINO EP in bf16: %s", openvino)
    report = build_report(
        args.artifacts,
        list(VARIANTS),
        run.speed_batch(),
        failures,
        {
            "scorer": scorer,
            "store": tags,
            "seconds": {**seconds, "total": 0.0},
            "bentoml_home": os.environ.get("BENTOML_HOME"),
            "openvino_bf16": openvino,
        },
    )
    report["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    path = write_report(report, args.artifacts)
    log.info("wrote %s and export_report.json in %.0f s", path, report["seconds"]["total"])
    fatal = [v for v in failures if v in REQUIRED]
    if fatal:
        raise SystemExit(f"gate failed for {', '.join(fatal)}: see {path}")
    if failures:  # optional variants: served without them, `make test` still flags them
        log.warning("not published: %s (see %s)", ", ".join(failures), path)
    return report


if __name__ == "__main__":
    main()
