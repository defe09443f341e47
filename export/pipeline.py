"""The encoder variants, built in order fp32 -> opt -> int8 -> distilled_int8 -> fp16.

Each builder writes one variant into a staging folder and returns its gate metrics; `build`
runs the gate and renames the folder into `artifacts/onnx/<variant>` only if it passes. A variant
whose config.json records the same build key (inputs, teacher, code version, options) is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export import gates
from export.distill import DistillConfig, distill
from export.fp16 import export_fp16
from export.int8_recipe import quantize_best
from export.measure import (
    drop_pct,
    ndcg_with_variant,
    teacher_embeddings,
    teacher_ndcg,
)
from export.onnx_export import export_fp32
from export.optimize import optimize_o2
from export.quantize import detect_preset
from export.texts import GateSplit, Texts, load_calibration, load_texts, split_texts
from export.variant_dir import (
    is_complete,
    read_config,
    scratch,
    staging,
    update_config,
    write_config,
)

log = logging.getLogger("export")
VARIANTS = ("fp32", "opt", "int8", "distilled_int8", "fp16")
PARITY_GATED = ("fp32", "opt")  # NDCG = the teacher's (metrics.json), see teacher_ndcg
# A smaller model distilled on the catalog's texts: gated on unseen catalog texts only; its
# cosine on generic sentences is reported, not gated (it was never trained for them).
CATALOG_GATED = ("distilled_int8", "distilled_opt", "distilled_fp32")
BUILD_VERSION = 3  # bump when a builder changes what it writes


@dataclass
class ExportRun:
    artifacts: Path
    force: bool = False
    model_path: str | None = None  # the teacher; None = bundled all-MiniLM-L6-v2
    distill_config: DistillConfig = field(default_factory=DistillConfig)
    preset: str = field(default_factory=detect_preset)
    max_length: int = 128
    texts: Texts = field(init=False)
    split: GateSplit = field(init=False)
    _teacher: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.artifacts = Path(self.artifacts)
        self.texts = load_texts(self.artifacts)
        train_config = self.artifacts / "train_config.json"
        if train_config.is_file():  # the teacher `make train` used
            encoder = json.loads(train_config.read_text()).get("encoder", {})
            self.model_path = self.model_path or encoder.get("model_path") or None
            self.max_length = int(encoder.get("max_length", self.max_length))
        self.distill_config.max_length = self.max_length
        self.split = split_texts(self.texts)

    def target(self, variant: str) -> Path:
        return self.artifacts / "onnx" / variant

    def teacher(self) -> np.ndarray:
        """The teacher's embeddings of the gate texts (computed once)."""
        if self._teacher is None:
            self._teacher = teacher_embeddings(self.split.gate, self.model_path)
        return self._teacher

    def inputs_key(self) -> str:
        """texts.json and the trained models' metrics: a retrain re-gates every variant."""
        digest = hashlib.sha256()
        for name in ("texts.json", "metrics.json"):
            path = self.artifacts / name
            digest.update(path.read_bytes() if path.is_file() else b"-")
        return digest.hexdigest()[:16]

    def build_key(self, variant: str) -> dict[str, Any]:
        key: dict[str, Any] = {
            "version": BUILD_VERSION,
            "inputs": self.inputs_key(),
            "teacher": self.model_path or "bundled",
            "max_length": self.max_length,
        }
        if variant in ("int8", "distilled_int8"):
            key["preset"] = self.preset
        if variant == "distilled_int8":  # unset options (None) left out: a new one keeps keys
            key["distill"] = {k: v for k, v in vars(self.distill_config).items() if v is not None}
        return key

    def up_to_date(self, variant: str) -> bool:
        target = self.target(variant)
        return is_complete(target) and read_config(target).get("build") == self.build_key(variant)

    def ndcg_metrics(self, variant: str, variant_dir: Path) -> dict[str, Any]:
        """NDCG@10 (recommenders, cold start) with this variant, and drops relative to fp32."""
        result, note = None, ""
        if variant in PARITY_GATED:
            result = teacher_ndcg(self.artifacts)
            note = "metrics.json: the PyTorch teacher's, which this variant matches within 1e-4"
        if result is None:
            result, note = ndcg_with_variant(self.artifacts, variant_dir)
        if result is None:
            log.info("%s: NDCG not measured: %s", variant, note)
            return {"ndcg@10": None, "cold_start_ndcg@10": None, "ndcg_note": note}
        base = result if variant == "fp32" else self.fp32_metrics()
        log.info(
            "%s: NDCG@10 %.4f, cold start %.4f",
            variant,
            result["ndcg@10"],
            result["cold_start_ndcg@10"],
        )
        return {
            **result,
            "ndcg_note": note,
            "ndcg_drop_pct": drop_pct(result["ndcg@10"], base.get("ndcg@10")),
            "cold_start_drop_pct": drop_pct(
                result["cold_start_ndcg@10"], base.get("cold_start_ndcg@10")
            ),
        }

    def fp32_metrics(self) -> dict[str, Any]:
        fp32 = self.target("fp32")
        return read_config(fp32).get("metrics", {}) if is_complete(fp32) else {}

    def cosine_metrics(self, variant_dir: Path, step: int = 1) -> dict[str, Any]:
        """Cosine to the teacher on the unseen gate texts (every `step`-th one): overall and
        per part (held-out catalog, generic sentences). `mean_cosine` / `min_cosine`, the gated
        figures, cover what the variant is gated on: catalog only for the distilled student."""
        from rec_models.serving.onnx_encoder import OnnxEncoder

        emb = OnnxEncoder(variant_dir).encode(self.split.gate[::step])
        ref = self.teacher()[::step]
        n_catalog = len(range(0, len(self.split.catalog), step))
        parts = {
            "catalog": gates.cosine_stats(emb[:n_catalog], ref[:n_catalog]),
            "generic": gates.cosine_stats(emb[n_catalog:], ref[n_catalog:]),
            "all": gates.cosine_stats(emb, ref),
        }
        gated = "catalog" if read_config(variant_dir)["variant"] in CATALOG_GATED else "all"
        out: dict[str, Any] = {**parts[gated], "cosine_gated_on": gated}
        for part, stats in parts.items():
            out |= {f"{part}_{k}": v for k, v in stats.items()}
        return out

    def probe_texts(self, n: int = 300) -> list[str]:
        """Build texts for choosing the int8 recipe (never gate texts): a seeded sample of the
        catalog's build texts and the calibration sentences."""
        import random

        pool = self.split.distill
        return random.Random(7).sample(pool, min(n, len(pool))) + load_calibration()

    def speed_batch(self) -> list[str]:
        """32 real texts, half item descriptions and half user profiles (the serving mix)."""
        return self.texts.items[:16] + self.texts.users[:16]

    def require(self, variant: str) -> Path:
        path = self.target(variant)
        if not is_complete(path):
            raise FileNotFoundError(f"{path} is missing: build '{variant}' first")
        return path


def build(run: ExportRun, variant: str, builder: Callable[[ExportRun, Path], dict]) -> dict | None:
    """Build + gate `variant` atomically; returns its metrics, or None if it was up to date."""
    if not run.force and run.up_to_date(variant):
        log.info("%s: up to date, kept (use --force to rebuild)", variant)
        return None
    target = run.target(variant)
    try:
        with staging(target) as tmp:
            metrics = builder(run, tmp)
            gates.check(variant, metrics)
            update_config(tmp, metrics=metrics, build=run.build_key(variant))
    except gates.GateFailed:
        if target.exists():  # an older build of other inputs: not valid for these
            shutil.rmtree(target)
        raise
    log.info("%s: gate passed, published %s", variant, run.target(variant))
    return metrics


def build_fp32(run: ExportRun, out: Path) -> dict:
    export_fp32(run.model_path, out, max_length=run.max_length)
    metrics = {
        **gates.torch_parity(out, run.model_path, run.split.gate[::2]),
        **run.cosine_metrics(out),
    }
    gates.check("fp32", metrics)  # cheap gates before the NDCG pass
    return {**metrics, **run.ndcg_metrics("fp32", out)}


def build_opt(run: ExportRun, out: Path) -> dict:
    optimize_o2(run.require("fp32"), out)
    metrics = {
        **gates.torch_parity(out, run.model_path, run.split.gate[::2]),
        **run.cosine_metrics(out),
    }
    gates.check("opt", metrics)
    return {**metrics, **run.ndcg_metrics("opt", out)}


def build_int8(run: ExportRun, out: Path) -> dict:
    fp32 = run.require("fp32")
    sources = [p for p in (run.target("opt"), fp32) if is_complete(p)]
    metrics = quantize_best(run, sources, out, "int8")
    metrics["file_size_ratio"] = gates.file_size_ratio(out, fp32)
    metrics["size_ratio"] = gates.quantized_size_ratio(out, fp32, metrics["excluded_nodes"])
    gates.check("int8", metrics)  # cheap gates before the NDCG pass
    return {**metrics, **run.ndcg_metrics("int8", out)}


def build_distilled(run: ExportRun, out: Path) -> dict:
    with scratch(out.parent, ".distill-") as work:
        summary = distill(
            run.model_path,
            run.split.distill,
            work / "student",
            layers=list(run.distill_config.keep_layers),
            config=run.distill_config,
        )
        export_fp32(
            work / "student", work / "fp32", variant="distilled_fp32", max_length=run.max_length
        )
        # the student's own export parity (fp32 graph vs the PyTorch student)
        parity = gates.torch_parity(work / "fp32", work / "student", run.split.gate[::6])
        optimize_o2(work / "fp32", work / "opt", variant="distilled_opt")
        metrics = quantize_best(run, [work / "opt", work / "fp32"], out, "distilled_int8")
        metrics["student_export_max_abs_diff"] = parity["max_abs_diff"]
    config = read_config(out)
    config["parameters"] = summary["parameters"]  # the student's weights, counted in PyTorch
    config["distillation"] = {k: v for k, v in summary.items() if k != "config"}
    write_config(out, config)
    metrics["file_size_ratio"] = gates.file_size_ratio(out, run.require("fp32"))
    metrics["size_ratio"] = gates.quantized_size_ratio(
        out, run.require("fp32"), metrics["excluded_nodes"]
    )
    metrics["distill_seconds"] = summary["seconds"]
    gates.check("distilled_int8", metrics)
    return {**metrics, **run.ndcg_metrics("distilled_int8", out)}


def build_fp16(run: ExportRun, out: Path) -> dict:
    export_fp16(run.require("fp32"), out)
    gates.fp16_graph_check(out)
    try:  # the CPU provider may not run every fp16 kernel; the graph check above still holds
        metrics: dict[str, Any] = run.cosine_metrics(out, step=4)
        metrics["cpu_check"] = "ran on CPUExecutionProvider"
    except Exception as exc:
        metrics = {"cpu_check": f"onnx.checker only; CPU provider failed: {exc}"[:300]}
    return {**metrics, "ndcg@10": None, "ndcg_note": "GPU variant: not evaluated on CPU"}


BUILDERS: dict[str, Callable[[ExportRun, Path], dict]] = {
    "fp32": build_fp32,
    "opt": build_opt,
    "int8": build_int8,
    "distilled_int8": build_distilled,
    "fp16": build_fp16,
}
