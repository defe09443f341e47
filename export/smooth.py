"""SmoothQuant (Xiao et al., 2023) before dynamic int8: move activation outliers into the weights.

A few input channels of the encoder's matmuls carry activations 10-100x larger than the rest
(BERT's outlier dimensions, largest on [CLS]/[SEP]); per-tensor dynamic quantization then spends
its 256 levels on them and rounds the other channels coarsely, which costs short texts the most
(measured: a 4-token text at cosine 0.956 to PyTorch). For every weight-B MatMul and fused
Attention, with per-input-channel activation maxima a_j (measured on build texts, real tokens
only) and weight maxima w_j, s_j = a_j^alpha / w_j^(1 - alpha): the input is divided by s (one
Mul per node, inserted before it) and the weight's rows multiplied by s, so the float graph
computes the same function while the quantized one sees balanced channels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from export.variant_dir import MODEL_FILE, TOKENIZER_FILE, read_config, write_config

SMOOTH_OPS = ("MatMul", "Attention")
SCALE_RANGE = (1e-2, 1e2)  # keeps a dead channel (a_j ~ 0) from blowing up its weight row


def smooth_targets(model) -> list:
    """Nodes whose second input is a weight (initializer): MatMul (d_in, d_out), Attention
    (d, 3d)."""
    inits = {t.name for t in model.graph.initializer}
    return [
        n
        for n in model.graph.node
        if n.op_type in SMOOTH_OPS and len(n.input) > 1 and n.input[1] in inits
    ]


def channel_maxima(model, names: list[str], texts: list[str], tokenizer_json: Path) -> dict:
    """Per-channel max |x| of the tensors `names` over the real tokens of `texts`."""
    import onnx
    import onnxruntime as ort
    from onnx import helper
    from tokenizers import Tokenizer

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    for name in names:
        if name not in have:
            probe.graph.output.append(
                helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep names
    sess = ort.InferenceSession(probe.SerializeToString(), options, ["CPUExecutionProvider"])
    inputs = {i.name for i in sess.get_inputs()}
    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.enable_truncation(max_length=128)
    tok.enable_padding()
    amax: dict[str, np.ndarray] = {}
    ordered = sorted(texts, key=len)  # similar lengths per batch: little padding
    for start in range(0, len(ordered), 32):
        enc = tok.encode_batch(ordered[start : start + 32])
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)  # (B, T)
        feed = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        outs = sess.run(names, {k: v for k, v in feed.items() if k in inputs})
        real = mask.reshape(-1).astype(bool)
        for name, x in zip(names, outs, strict=True):
            m = np.abs(x.reshape(-1, x.shape[-1])[real]).max(axis=0)  # (d_in,)
            amax[name] = np.maximum(amax[name], m) if name in amax else m
    return amax


def smooth_model(model, texts: list[str], tokenizer_json: Path, alpha: float) -> int:
    """Apply the smoothing in place; returns the number of nodes smoothed."""
    from onnx import helper, numpy_helper

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: {alpha} must lie in (0, 1)")
    nodes = smooth_targets(model)
    amax = channel_maxima(model, sorted({n.input[0] for n in nodes}), texts, tokenizer_json)
    inits = {t.name: t for t in model.graph.initializer}
    muls = {}
    for node in nodes:
        x, w_name = node.input[0], node.input[1]
        w = numpy_helper.to_array(inits[w_name])  # (d_in, d_out)
        a = np.maximum(amax[x], 1e-5)
        s = a**alpha / np.maximum(np.abs(w).max(axis=1), 1e-5) ** (1 - alpha)
        s = np.clip(s, *SCALE_RANGE).astype(np.float32)  # (d_in,)
        inv = numpy_helper.from_array((1.0 / s).astype(np.float32), f"{node.name}_smooth_inv")
        model.graph.initializer.append(inv)
        inits[w_name].CopyFrom(numpy_helper.from_array((w * s[:, None]).astype(np.float32), w_name))
        smoothed = f"{x}_smooth_{node.name}"
        muls[id(node)] = helper.make_node(
            "Mul", [x, inv.name], [smoothed], name=f"{node.name}_smooth"
        )
        node.input[0] = smoothed
    order = list(model.graph.node)
    del model.graph.node[:]
    for node in order:  # each Mul right before its consumer: the order stays topological
        if id(node) in muls:
            model.graph.node.append(muls[id(node)])
        model.graph.node.append(node)
    return len(nodes)


def smooth_graph(src_dir: Path, out_dir: Path, texts: list[str], alpha: float) -> dict:
    """`src_dir` (a float variant folder) -> `out_dir` with the smoothed graph."""
    import onnx

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src_dir / MODEL_FILE))
    n = smooth_model(model, texts, src_dir / TOKENIZER_FILE, alpha)
    onnx.save(model, str(out_dir / MODEL_FILE))
    shutil.copy2(src_dir / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
    config = {**read_config(src_dir), "smoothquant": {"alpha": alpha, "nodes": n}}
    write_config(out_dir, config)
    return config
