"""Step 1: the PyTorch encoder -> `onnx/fp32` (Optimum exporter, `last_hidden_state` output)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from export.variant_dir import MODEL_FILE, TOKENIZER_FILE, onnx_stats, scratch, write_config

OPSET = 18  # optimum recommends >= 18 for BERT
MAX_LENGTH = 128


class ExportError(RuntimeError):
    """The exporter did not produce the expected graph."""


def base_config(variant: str, hf_config: dict[str, Any], model_file: Path, **extra: Any) -> dict:
    """The variant's config.json (README contract) from the HF config and the exported graph."""
    stats = onnx_stats(model_file)
    return {
        "variant": variant,
        "dim": int(hf_config["hidden_size"]),
        "max_length": int(extra.pop("max_length", MAX_LENGTH)),
        "pooling": "mean",
        "normalize": True,
        "gpu_only": False,
        "opset": stats["opset"],
        "layers": int(hf_config["num_hidden_layers"]),
        "parameters": stats["parameters"],
        # what the optimizer needs to rebuild a transformers config without the HF folder
        "model_type": hf_config["model_type"],
        "heads": int(hf_config["num_attention_heads"]),
        **extra,
    }


def export_fp32(
    model_path: str | Path | None,
    out_dir: Path,
    variant: str = "fp32",
    max_length: int = MAX_LENGTH,
) -> dict:
    """Export the HF encoder at `model_path` (default: bundled MiniLM) into `out_dir`
    (`model.onnx`, `tokenizer.json`, `config.json`); returns the config."""
    try:
        from optimum.exporters.onnx import main_export
    except ImportError as exc:  # pragma: no cover - install hint
        raise ImportError("export needs optimum-onnx: pip install -e '.[train]'") from exc
    from rec_models.text.encoder import resolve_model_path

    src = resolve_model_path(model_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with scratch(out_dir.parent) as work:
        # library_name="transformers": a sentence-transformers folder would otherwise get
        # `sentence_embedding` outputs instead of `last_hidden_state`
        main_export(
            str(src),
            work,
            task="feature-extraction",
            library_name="transformers",
            opset=OPSET,
            do_validation=False,
            device="cpu",
        )
        if not (work / MODEL_FILE).is_file():
            raise ExportError(f"optimum wrote no {MODEL_FILE} for {src}")
        shutil.move(work / MODEL_FILE, out_dir / MODEL_FILE)
    shutil.copy2(src / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    hf_config = json.loads((src / "config.json").read_text())
    config = base_config(variant, hf_config, out_dir / MODEL_FILE, max_length=max_length)
    check_io(out_dir / MODEL_FILE)
    write_config(out_dir, config)
    return config


def check_io(model_file: Path) -> None:
    """The README contract: int64 inputs, `last_hidden_state` (batch, seq, dim) output."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    inputs = {i.name for i in graph.input}
    outputs = [o.name for o in graph.output]
    if not {"input_ids", "attention_mask"} <= inputs:
        raise ExportError(f"{model_file}: inputs {sorted(inputs)} lack input_ids/attention_mask")
    if "last_hidden_state" not in outputs:
        raise ExportError(f"{model_file}: outputs {outputs} lack last_hidden_state")
