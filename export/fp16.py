"""Step 5: the GPU variant, fp16 (Optimum O4 = O3 fusions + mixed precision), built on the CPU.

Optimum's O4 runs here without a GPU (it warns "There is no gpu for onnxruntime to do
optimization" and applies the Python-side fusions and the fp16 conversion). Should it ever need
CUDA, the fallback is ONNX Runtime's own converter (`onnxruntime.transformers.float16`, shipped
with onnxruntime; onnxconverter-common is not installed). Inputs and outputs stay int64/float32
(keep_io_types), so the serving code is the same for every variant.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from export.optimize import optimize_graph
from export.variant_dir import MODEL_FILE, TOKENIZER_FILE, onnx_stats, read_config, write_config

log = logging.getLogger("export")


def convert_float16(src_model: Path, dst_model: Path) -> None:
    """Plain fp32 -> fp16 conversion of the graph's weights and ops, float32 at the edges."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src_model)), keep_io_types=True)
    onnx.save(model, str(dst_model))


def export_fp16(fp32_dir: Path, out_dir: Path, variant: str = "fp16") -> dict:
    """`fp32_dir` -> `out_dir` with an fp16 graph for the CUDA provider; returns the config
    (`gpu_only` true, `fp16_method` "optimum-O4" or "ort-float16")."""
    fp32_dir, out_dir = Path(fp32_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = read_config(fp32_dir)
    try:
        optimize_graph(fp32_dir / MODEL_FILE, out_dir / MODEL_FILE, config, "O4")
        method = "optimum-O4"
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        log.warning("O4 failed on this machine (%s); converting with onnxruntime float16", exc)
        convert_float16(fp32_dir / MODEL_FILE, out_dir / MODEL_FILE)
        method = "ort-float16"
    shutil.copy2(fp32_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    config = {
        **config,
        "variant": variant,
        "gpu_only": True,
        "precision": "fp16",
        "optimization": "O4" if method == "optimum-O4" else None,
        "fp16_method": method,
        "parameters": onnx_stats(out_dir / MODEL_FILE)["parameters"],
    }
    write_config(out_dir, config)
    return config
