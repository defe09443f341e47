"""Step 3: dynamic int8 quantization (weights per channel, activations per batch).

`quantize_int8` quantizes one graph; the preset (the CPU's instruction set, as in
sentence-transformers' `export_dynamic_quantized_onnx_model`) is read from /proc/cpuinfo unless
given and is recorded in config.json. The O2 graph is quantized through
`onnxruntime.quantization.quantize_dynamic` with DefaultTensorType (ORTQuantizer fails in shape
inference on it); the caller falls back to the fp32 graph if the O2 result fails its gate.
`MatMulConstBOnly`: only matmuls with a constant (weight) B are quantized; the activation x
activation matmuls of attention (scores, weighted sum) stay float, since quantizing both sides
per batch costs accuracy for little speed. `exclude` leaves named nodes in float (the most
sensitive ones, measured by export/sensitivity.py).
"""

from __future__ import annotations

import logging
import platform
import shutil
from pathlib import Path

from export.variant_dir import MODEL_FILE, TOKENIZER_FILE, onnx_stats, read_config, write_config

PRESETS = ("avx512_vnni", "avx512", "avx2", "arm64")
# MatMul per channel, the fused Attention (QAttention) and the embedding Gather: without the
# last two the 47 MB word-embedding table stays fp32 and the file is ~2/3 of fp32.
OPS_TO_QUANTIZE = ["MatMul", "Attention", "Gather", "EmbedLayerNormalization"]
QUANTIZED_OPS = (
    "MatMulInteger",
    "QEmbedLayerNormalization",
    "DynamicQuantizeMatMul",
    "QAttention",
    "QLinearMatMul",
    "MatMulIntegerToFloat",
    "DynamicQuantizeLinear",
)


class _NoPreprocessHint(logging.Filter):
    """The quantizer logs a hint to the root logger on every call (dozens per export while the
    recipe is chosen); the graphs here come straight from the exporter / optimizer."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


logging.getLogger().addFilter(_NoPreprocessHint())


def detect_preset(cpuinfo: str | None = None, machine: str | None = None) -> str:
    """The best preset for this CPU: avx512_vnni > avx512 > avx2; arm64 on aarch64."""
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64"):
        return "arm64"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def weight_type(preset: str):
    """int8 weights, except AVX2 (u8s8 overflow): uint8 as in Optimum's avx2 preset."""
    from onnxruntime.quantization import QuantType

    if preset not in PRESETS:
        raise ValueError(f"preset: '{preset}' is not one of {', '.join(PRESETS)}")
    return QuantType.QUInt8 if preset == "avx2" else QuantType.QInt8


def count_quantized_nodes(model_file: Path) -> int:
    return sum(n for op, n in onnx_stats(model_file)["ops"].items() if op in QUANTIZED_OPS)


def quantize_int8(
    src_dir: Path,
    out_dir: Path,
    preset: str | None = None,
    variant: str = "int8",
    exclude: list[str] | None = None,
    only: list[str] | None = None,
) -> dict:
    """Quantize `src_dir/model.onnx` (fp32 or O2 graph) into `out_dir`, leaving the nodes in
    `exclude` float (or quantizing `only` those nodes); returns the config."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    preset = preset or detect_preset()
    quantize_dynamic(
        src_dir / MODEL_FILE,
        out_dir / MODEL_FILE,
        op_types_to_quantize=OPS_TO_QUANTIZE,
        per_channel=True,
        reduce_range=False,
        weight_type=weight_type(preset),
        nodes_to_quantize=list(only) if only else None,
        nodes_to_exclude=list(exclude or []),
        extra_options={
            "DefaultTensorType": onnx.TensorProto.FLOAT,
            "WeightSymmetric": True,
            "MatMulConstBOnly": True,
        },
    )
    shutil.copy2(src_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    src_config = read_config(src_dir)
    config = {
        **src_config,
        "variant": variant,
        "quantization": {
            "preset": preset,
            "mode": "dynamic",
            "per_channel": True,
            "ops": OPS_TO_QUANTIZE,
            "matmul_const_b_only": True,
            "excluded_nodes": list(exclude or []),
            "source": src_config["variant"],
        },
        "quantized_nodes": count_quantized_nodes(out_dir / MODEL_FILE),
    }
    write_config(out_dir, config)
    return config
