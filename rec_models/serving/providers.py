"""Which ONNX Runtime execution provider and which encoder variant to serve with.

Pure logic over injected facts (available providers, whether a GPU is visible, which variants are
published), so every branch is unit-testable on a machine without a GPU:

The device and the variant come from the serving settings (ADREC_DEVICE, ADREC_ENCODER_VARIANT):
- `ADREC_DEVICE=auto` (default): CUDA + `fp16` when the CUDA execution provider is installed
  (onnxruntime-gpu), a GPU is visible and `fp16` is published; else CPU + the best CPU variant.
- `ADREC_DEVICE=cuda`: as auto, but says why when it has to fall back to the CPU (never crashes).
- `ADREC_DEVICE=cpu`: CPU + the best CPU variant.
- `ADREC_ENCODER_VARIANT=<name>` overrides the variant; a GPU-only one (fp16) on CPU is an error.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEVICE_ENV = "ADREC_DEVICE"
VARIANT_ENV = "ADREC_ENCODER_VARIANT"
DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_VARIANT = "fp16"
GPU_ONLY_VARIANTS = frozenset({"fp16"})  # fp16 graphs are built for the CUDA provider
CPU_ONLY_VARIANTS = frozenset({"int8", "distilled_int8"})  # int8 kernels do not run on CUDA
CPU_PREFERENCE = ("int8", "distilled_int8", "opt", "fp32")  # best first


@dataclass(frozen=True)
class RuntimeChoice:
    provider_list: list[str]  # for onnxruntime.InferenceSession(providers=...)
    variant: str  # folder name under artifacts/onnx/
    reason: str  # one line for the logs and /health

    @property
    def device(self) -> str:
        return "cuda" if self.provider_list[0] == CUDA else "cpu"


def probe_gpu() -> bool:
    """Best-effort probe: is an NVIDIA GPU visible to this process?"""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if Path("/dev/nvidia0").exists():
        return True
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return False
        return out.returncode == 0 and "GPU" in out.stdout
    return False


def published_variants(onnx_dir: str | os.PathLike[str]) -> list[str]:
    """Variant folders under `onnx_dir` that hold a complete encoder (config.json + model.onnx)."""
    root = Path(onnx_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and (p / "config.json").is_file() and (p / "model.onnx").is_file()
    )


def _best_cpu_variant(published: Sequence[str]) -> str:
    for name in CPU_PREFERENCE:
        if name in published:
            return name
    raise ValueError(
        f"no CPU encoder variant is published (have: {', '.join(published) or 'none'}; "
        f"need one of {', '.join(CPU_PREFERENCE)}): run `make export`"
    )


def select_runtime(
    published_variants: Sequence[str],
    device: str | None = None,
    variant: str | None = None,
    available_providers: Sequence[str] | None = None,
    gpu_visible: bool | None = None,
) -> RuntimeChoice:
    """Choose providers + variant for `device` (default "auto") and `variant` (None: the best
    published); the facts default to onnxruntime's providers and a GPU probe."""
    device = (device or "auto").strip().lower()
    if device not in DEVICES:
        raise ValueError(f"{DEVICE_ENV}: '{device}' is not one of {', '.join(DEVICES)}")
    published = list(published_variants)
    if variant is not None and variant not in published:
        raise ValueError(
            f"{VARIANT_ENV}: '{variant}' is not a published encoder variant "
            f"(published: {', '.join(published) or 'none'})"
        )
    if available_providers is None:
        import onnxruntime as ort

        available_providers = ort.get_available_providers()
    if gpu_visible is None:
        gpu_visible = probe_gpu()
    has_ep = CUDA in available_providers
    cuda_ok = has_ep and bool(gpu_visible)
    why_not = (
        ""
        if cuda_ok
        else f"{CUDA} not available (install onnxruntime-gpu)"
        if not has_ep
        else "no GPU visible"
    )

    if variant is not None:
        return _with_override(variant, device, cuda_ok, why_not)
    if device in ("auto", "cuda") and cuda_ok and GPU_VARIANT in published:
        return RuntimeChoice([CUDA, CPU], GPU_VARIANT, f"{DEVICE_ENV}={device}: CUDA + fp16")
    if device == "cuda" and cuda_ok:  # forced, GPU fine, but no fp16 published: fp32 on CUDA
        fallback = next((v for v in ("fp32", "opt") if v in published), None)
        if fallback:
            return RuntimeChoice(
                [CUDA, CPU], fallback, f"{DEVICE_ENV}=cuda: fp16 not published, {fallback} on CUDA"
            )
    cpu_variant = _best_cpu_variant(published)
    if device == "cuda":
        reason = (
            f"{DEVICE_ENV}=cuda but {why_not or 'no GPU variant published'}: falling back to CPU"
        )
        log.warning(reason)
    elif device == "auto" and cuda_ok:
        reason = f"{DEVICE_ENV}=auto: fp16 not published, CPU + {cpu_variant}"
    else:
        reason = f"{DEVICE_ENV}={device}: CPU + {cpu_variant}" + (
            f" ({why_not})" if why_not and device == "auto" else ""
        )
    return RuntimeChoice([CPU], cpu_variant, reason)


def _with_override(variant: str, device: str, cuda_ok: bool, why_not: str) -> RuntimeChoice:
    wants_gpu = device in ("auto", "cuda") and cuda_ok
    if variant in GPU_ONLY_VARIANTS:
        if not wants_gpu:
            raise ValueError(
                f"{VARIANT_ENV}: '{variant}' runs only on the CUDA execution provider, but "
                f"{DEVICE_ENV}={device} and {why_not or 'the CPU was chosen'}; "
                f"use one of {', '.join(CPU_PREFERENCE)}"
            )
        return RuntimeChoice([CUDA, CPU], variant, f"{VARIANT_ENV}={variant} on CUDA")
    if wants_gpu and variant not in CPU_ONLY_VARIANTS:
        return RuntimeChoice([CUDA, CPU], variant, f"{VARIANT_ENV}={variant} on CUDA")
    reason = f"{VARIANT_ENV}={variant} on CPU"
    if device == "cuda":
        reason += f" ({variant} has no CUDA kernels)" if cuda_ok else f" ({why_not})"
        log.warning("%s=cuda: %s", DEVICE_ENV, reason)
    return RuntimeChoice([CPU], variant, reason)
