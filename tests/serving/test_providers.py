"""Provider and variant selection (pure logic, with injected providers and GPU visibility)."""

from __future__ import annotations

import logging

import pytest

from rec_models.serving import providers as P
from rec_models.serving.providers import CPU, CUDA, RuntimeChoice, select_runtime
from rec_models.serving.settings import ServingSettings

ALL = ["distilled_int8", "fp16", "fp32", "int8", "opt"]
WITH_CUDA = [CUDA, CPU]


def choose(device="auto", variant=None, available=WITH_CUDA, gpu=True, published=ALL):
    return select_runtime(
        published, device=device, variant=variant, available_providers=available, gpu_visible=gpu
    )


def test_cuda_provider_and_gpu_pick_fp16_on_cuda():
    choice = choose()
    assert choice == RuntimeChoice([CUDA, CPU], "fp16", choice.reason)
    assert choice.device == "cuda"


def test_cuda_provider_without_gpu_picks_int8_on_cpu():
    choice = choose(gpu=False)
    assert (choice.provider_list, choice.variant) == ([CPU], "int8")
    assert "no GPU visible" in choice.reason


def test_gpu_without_cuda_provider_picks_cpu():
    choice = choose(available=[CPU], gpu=True)
    assert (choice.provider_list, choice.variant) == ([CPU], "int8")


def test_forced_cuda_without_provider_falls_back_to_cpu_with_reason(caplog):
    with caplog.at_level(logging.WARNING, logger=P.__name__):
        choice = choose(device="cuda", available=[CPU], gpu=False)
    assert (choice.provider_list, choice.variant) == ([CPU], "int8")
    assert "falling back to CPU" in choice.reason and CUDA in choice.reason
    assert "falling back to CPU" in caplog.text


def test_forced_cpu_ignores_the_gpu():
    choice = choose(device="cpu")
    assert (choice.provider_list, choice.variant) == ([CPU], "int8")


def test_cpu_preference_order():
    assert choose(device="cpu", published=["fp32", "opt", "distilled_int8"]).variant == (
        "distilled_int8"
    )
    assert choose(device="cpu", published=["fp32", "opt"]).variant == "opt"
    assert choose(device="cpu", published=["fp32", "fp16"]).variant == "fp32"


def test_auto_without_published_fp16_uses_cpu_variant():
    choice = choose(published=["fp32", "int8"])
    assert (choice.provider_list, choice.variant) == ([CPU], "int8")


def test_bad_device_names_the_variable_and_choices():
    with pytest.raises(ValueError, match="ADREC_DEVICE") as err:
        choose(device="tpu")
    assert all(d in str(err.value) for d in ("auto", "cpu", "cuda"))
    with pytest.raises(ValueError, match="ADREC_DEVICE: 'gpu0'"):
        ServingSettings.from_env({"ADREC_DEVICE": "gpu0"})


def test_fp16_override_on_cpu_is_an_error():
    with pytest.raises(ValueError, match="ADREC_ENCODER_VARIANT"):
        choose(variant="fp16", available=[CPU], gpu=False)
    with pytest.raises(ValueError, match="ADREC_ENCODER_VARIANT"):
        choose(device="cpu", variant="fp16")


def test_overrides():
    assert choose(variant="fp16").provider_list == [CUDA, CPU]
    assert choose(variant="int8").provider_list == [CPU]  # int8 has no CUDA kernels
    assert choose(variant="fp32").provider_list == [CUDA, CPU]
    assert choose(variant="opt", gpu=False).provider_list == [CPU]
    with pytest.raises(ValueError, match="ADREC_ENCODER_VARIANT: 'bf16'"):
        choose(variant="bf16")


def test_settings_choose_device_and_variant(monkeypatch):
    monkeypatch.setenv("ADREC_DEVICE", "cuda")  # never read here: the settings carry the choice
    settings = ServingSettings.from_env({"ADREC_DEVICE": "cpu", "ADREC_ENCODER_VARIANT": "opt"})
    choice = select_runtime(
        ALL, settings.device, settings.encoder_variant or None, WITH_CUDA, gpu_visible=True
    )
    assert (choice.provider_list, choice.variant) == ([CPU], "opt")
    settings = ServingSettings.from_env({"ADREC_ENCODER_VARIANT": ""})
    choice = select_runtime(
        ALL, settings.device, settings.encoder_variant or None, WITH_CUDA, gpu_visible=True
    )
    assert choice.variant == "fp16"  # auto + a GPU + fp16 published


def test_nothing_published_for_cpu():
    with pytest.raises(ValueError, match="make export"):
        choose(device="cpu", published=["fp16"])


def test_real_probe_on_this_machine():
    """The defaults (onnxruntime's providers, the GPU probe) work and give a valid choice."""
    choice = select_runtime(ALL, device="auto")
    assert choice.variant in ALL and choice.provider_list[-1] == CPU


def test_probe_respects_hidden_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert P.probe_gpu() is False


def test_published_variants_lists_complete_folders(tmp_path):
    for name, files in {"int8": ["config.json", "model.onnx"], "opt": ["config.json"]}.items():
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_text("{}")
    assert P.published_variants(tmp_path) == ["int8"]
    assert P.published_variants(tmp_path / "missing") == []
