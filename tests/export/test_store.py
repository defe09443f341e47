"""The BentoML model store: every variant published with a sha256 manifest that verifies."""

from __future__ import annotations

import shutil

import pytest

from export.pipeline import VARIANTS
from export.store import verify
from rec_models.serving.store import encoder_model_name, load_store_model, sha256_map


@pytest.mark.parametrize("variant", VARIANTS)
def test_store_entry_verifies_and_matches_artifacts(artifacts, variant):
    _, metadata = load_store_model(f"{encoder_model_name(variant)}:latest")
    assert metadata["variant"] == variant
    assert set(metadata["sha256"]) == {"model.onnx", "tokenizer.json", "config.json"}
    assert metadata["sha256"] == sha256_map(artifacts / "onnx" / variant)
    assert {"onnx", "onnxruntime", "optimum", "transformers", "torch"} <= set(metadata["libraries"])
    assert metadata["opset"] >= 17 and "metrics" in metadata


def test_model_names():
    assert encoder_model_name("distilled_int8") == "adrec-encoder-distilled-int8"


def test_corrupted_copy_fails_verify(artifacts, tmp_path):
    path, metadata = load_store_model(f"{encoder_model_name('int8')}:latest")
    copy = tmp_path / "int8"
    shutil.copytree(path, copy)
    verify(copy, metadata["sha256"])  # an intact copy passes
    original = (copy / "model.onnx").read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model\.onnx: sha256"):
        verify(copy, metadata["sha256"])
    (copy / "model.onnx").write_bytes(original)  # mended, so the next failure is the missing file
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match="missing"):
        verify(copy, metadata["sha256"])
