"""Step 2: ONNX Runtime graph optimization (Optimum O2: fused Attention, BiasGelu, LayerNorm)."""

from __future__ import annotations

import shutil
from pathlib import Path

from export.variant_dir import (
    MODEL_FILE,
    TOKENIZER_FILE,
    onnx_stats,
    read_config,
    scratch,
    write_config,
)


def transformers_config(variant_config: dict):
    """A transformers config with the shapes the fusions need, rebuilt from our config.json."""
    from transformers import AutoConfig

    return AutoConfig.for_model(
        variant_config.get("model_type", "bert"),
        hidden_size=variant_config["dim"],
        num_attention_heads=variant_config["heads"],
        num_hidden_layers=variant_config["layers"],
    )


def optimize_graph(src_model: Path, dst_model: Path, variant_config: dict, level: str = "O2"):
    """Optimize one graph with ORTOptimizer at `level` ("O1".."O4"); O4 means fp16 for GPU."""
    try:
        from optimum.onnxruntime import ORTOptimizer
        from optimum.onnxruntime.configuration import AutoOptimizationConfig
    except ImportError as exc:  # pragma: no cover - install hint
        raise ImportError("optimization needs optimum-onnx: pip install -e '.[train]'") from exc

    opt_config = AutoOptimizationConfig.with_optimization_level(level)
    optimizer = ORTOptimizer([Path(src_model)], config=transformers_config(variant_config))
    with scratch(Path(dst_model).parent) as work:
        optimizer.optimize(opt_config, save_dir=work, file_suffix=None)
        shutil.move(work / Path(src_model).name, dst_model)


def optimize_o2(fp32_dir: Path, out_dir: Path, variant: str = "opt") -> dict:
    """`fp32_dir` -> `out_dir` with the O2 graph; returns the new config."""
    fp32_dir, out_dir = Path(fp32_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src_config = read_config(fp32_dir)
    optimize_graph(fp32_dir / MODEL_FILE, out_dir / MODEL_FILE, src_config, "O2")
    shutil.copy2(fp32_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    stats = onnx_stats(out_dir / MODEL_FILE)
    config = {
        **src_config,
        "variant": variant,
        "optimization": "O2",
        "parameters": stats["parameters"],
    }
    write_config(out_dir, config)
    return config
