"""The fp32 variant under ONNX Runtime's OpenVINO execution provider plugin, gated like int8.

Optional (`pip install -e '.[openvino]'`, ~160 MB): the same `fp32` graph, run by OpenVINO with
`INFERENCE_PRECISION_HINT=bf16` on CPUs with AVX-512 BF16 / AMX; ONNX Runtime stays the
runtime. Nothing new is published: `python -m export` records its cosine to the teacher on the
unseen gate texts (the int8 thresholds) in the export report, so an operator knows whether the
bf16 path is safe on this machine before switching to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from export import gates


def openvino_session(model_file: Path, precision: str = "bf16", threads: int | None = None):
    """An InferenceSession of `model_file` on the OpenVINO EP's CPU device (ImportError with
    the install hint when the plugin is absent, RuntimeError when it offers no device)."""
    import onnxruntime as ort

    try:
        import onnxruntime_ep_openvino as ov
    except ImportError as exc:
        raise ImportError("the OpenVINO EP needs: pip install -e '.[openvino]'") from exc
    from rec_models.serving.onnx_encoder import default_threads

    name = ov.get_ep_name()
    if name not in {d.ep_name for d in ort.get_ep_devices()}:
        ort.register_execution_provider_library(name, ov.get_library_path())
    devices = [d for d in ort.get_ep_devices() if d.ep_name == name]
    if not devices:
        raise RuntimeError("the OpenVINO EP registered but offered no device")
    hint = {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": str(threads or default_threads()),
    }
    options = ort.SessionOptions()
    options.add_provider_for_devices(devices, {"load_config": json.dumps({"CPU": hint})})
    return ort.InferenceSession(str(model_file), options)


def openvino_check(fp32_dir: Path, texts: list[str], teacher) -> dict[str, Any]:
    """Cosine stats of the fp32 graph under OpenVINO bf16 vs the teacher, and the int8 gate's
    verdict; {"skipped": why} when the plugin is not installed or offers no device."""
    from rec_models.serving.onnx_encoder import OnnxEncoder

    try:
        session = openvino_session(Path(fp32_dir) / "model.onnx")
    except (ImportError, RuntimeError) as exc:
        return {"skipped": str(exc)}
    enc = OnnxEncoder(fp32_dir)
    enc.session = session  # same tokenizer and pooling, another execution provider
    stats = gates.cosine_stats(enc.encode(texts), teacher)
    limits = {k: v for k, v in gates.THRESHOLDS["int8"].items() if k.endswith("cosine")}
    try:
        gates.check("int8", stats, limits)
        verdict = "passes the int8 cosine gate"
    except gates.GateFailed as exc:
        verdict = f"fails: {exc}"
    return {"precision": "bf16", **stats, "gate": verdict}
