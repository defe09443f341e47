"""Atomic publication, idempotence, the CLI and the quantization preset."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from export import gates
from export.__main__ import parse_variants
from export.pipeline import VARIANTS, ExportRun, build, build_int8
from export.quantize import PRESETS, detect_preset
from export.variant_dir import staging


def test_failing_gate_leaves_no_variant_folder(artifacts, tmp_path, monkeypatch):
    work = tmp_path / "artifacts"
    (work / "onnx").mkdir(parents=True)
    shutil.copy(artifacts / "texts.json", work / "texts.json")
    shutil.copytree(artifacts / "onnx" / "fp32", work / "onnx" / "fp32")
    # one plain quantization, no recipe search: this test is about publication, not accuracy
    limits = {**gates.THRESHOLDS["int8"], "mean_cosine": 0.0, "min_cosine": 0.0}
    monkeypatch.setitem(gates.THRESHOLDS, "int8", {**limits, "size_ratio": 0.01})
    monkeypatch.setattr("export.int8_recipe.ALPHAS", (None,))
    monkeypatch.setattr("export.sensitivity.PROBE_TARGET", {"mean_cosine": 0.0, "min_cosine": 0.0})
    run = ExportRun(work)
    with pytest.raises(gates.GateFailed, match="size_ratio"):
        build(run, "int8", build_int8)
    assert sorted(p.name for p in (work / "onnx").iterdir()) == ["fp32"]  # no int8, no temp


def test_staging_is_atomic(tmp_path):
    target = tmp_path / "v"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError), staging(target) as tmp:
        (tmp / "new").write_text("new")
        raise RuntimeError("gate")
    assert [p.name for p in tmp_path.iterdir()] == ["v"] and (target / "old").exists()
    with staging(target) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["v"]


def test_published_variants_are_up_to_date(artifacts):
    run = ExportRun(artifacts)
    assert all(run.up_to_date(v) for v in VARIANTS)
    other = next(p for p in PRESETS if p != detect_preset())
    assert not ExportRun(artifacts, preset=other).up_to_date("int8")  # another preset: rebuild


def test_cli_variants():
    assert parse_variants("int8,fp32") == ["fp32", "int8"]  # dependency order
    with pytest.raises(argparse.ArgumentTypeError, match="valid: fp32, opt, int8"):
        parse_variants("fp32,bf16")


@pytest.mark.parametrize(
    ("flags", "machine", "preset"),
    [
        ("fpu avx2 avx512f avx512_vnni", "x86_64", "avx512_vnni"),
        ("fpu avx2 avx512f", "x86_64", "avx512"),
        ("fpu avx2", "x86_64", "avx2"),
        ("fp asimd", "aarch64", "arm64"),
    ],
)
def test_detect_preset(flags, machine, preset):
    assert detect_preset(f"processor : 0\nflags : {flags}\n", machine) == preset


def test_gate_texts_are_unseen(artifacts):
    """Nothing a build step learns from (distillation, recipe probe, calibration sentences)
    is a gate text."""
    from export.texts import load_calibration, load_texts, split_texts

    texts = load_texts(artifacts)
    split = split_texts(texts)
    gate = set(split.gate)
    assert len(gate) >= 650 and len(split.generic) >= 250
    assert set(split.catalog) <= set(texts.all) and not set(split.generic) & set(texts.all)
    assert not gate & set(split.distill)
    assert not gate & set(ExportRun(artifacts).probe_texts())
    assert len(load_calibration()) >= 80 and not gate & set(load_calibration())
    assert split.distill and set(split.distill) | gate >= set(texts.all)


def test_missing_texts_say_what_to_run(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="make train"):
        ExportRun(tmp_path)


def test_fp16_fallback_converter(artifacts, tmp_path):
    """The converter used if Optimum's O4 ever needs a GPU: valid graph, same embeddings."""
    from export.fp16 import convert_float16
    from export.gates import fp16_graph_check
    from rec_models.serving.onnx_encoder import OnnxEncoder

    fp32 = artifacts / "onnx" / "fp32"
    out = tmp_path / "fp16"
    out.mkdir()
    convert_float16(fp32 / "model.onnx", out / "model.onnx")
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(fp32 / name, out / name)
    fp16_graph_check(out)
    texts = ["Star Wars (1977). Genres: Action, Sci-Fi.", "A 24-year-old man, a technician."]
    cos = (OnnxEncoder(out).encode(texts) * OnnxEncoder(fp32).encode(texts)).sum(1)
    assert cos.min() > 0.999


def test_fused_source_kept_unless_plain_is_10pct_faster():
    from export.int8_recipe import pick_source

    assert pick_source({"opt": 100.0, "fp32": 95.0}) == "opt"  # 5%: noise on this machine
    assert pick_source({"opt": 100.0, "fp32": 89.0}) == "fp32"
    assert pick_source({"fp32": 89.0}) == "fp32"
    assert pick_source({"distilled_opt": 50.0, "distilled_fp32": 46.0}) == "distilled_opt"


def test_openvino_check_is_recorded(report):
    """The bf16 OpenVINO path is gated on the unseen texts when the plugin is installed, and
    says how to install it when not."""
    ov = report["openvino_bf16"]
    if "skipped" in ov:
        assert "openvino" in ov["skipped"].lower()
    else:
        assert ov["texts"] >= 650 and ov["gate"].startswith(("passes", "fails"))
