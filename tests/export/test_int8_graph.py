"""The int8 graph as built: quantized op types, weight-only B, the recipe's float nodes, and the
SmoothQuant rewrite keeping the float function."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort

from export.smooth import smooth_graph
from export.variant_dir import read_config
from rec_models.serving.onnx_encoder import OnnxEncoder

TEXTS = ["Thanks!", "Star Wars (1977). Genres: Action, Sci-Fi.", "A 24-year-old technician."]


def graph(folder):
    return onnx.load(str(folder / "model.onnx")).graph


def test_int8_quantizes_weight_matmuls_only(artifacts):
    """Every integer matmul has a constant (weight) B: attention's activation x activation
    matmuls stay float (MatMulConstBOnly); the fused graph's attention is QAttention."""
    folder = artifacts / "onnx" / "int8"
    g = graph(folder)
    consts = {t.name for t in g.initializer}
    ops = [n.op_type for n in g.node]
    integer = [n for n in g.node if n.op_type == "MatMulInteger"]
    assert integer and all(n.input[1] in consts for n in integer)
    if read_config(folder)["quantization"]["source"] == "opt":
        assert ops.count("QAttention") == read_config(folder)["layers"]
        assert "Attention" not in ops
    else:  # the unfused graph: Q.K^T and attention x V, two per layer, float
        float_mm = [n for n in g.node if n.op_type == "MatMul" and n.input[1] not in consts]
        assert len(float_mm) == 2 * read_config(folder)["layers"]


def test_ort_fuses_into_integer_to_float_kernels(artifacts, tmp_path):
    """What ONNX Runtime runs: DynamicQuantizeMatMul / MatMulIntegerToFloat after its fusions."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(artifacts / "onnx" / "int8" / "model.onnx"), options)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert ops & {"DynamicQuantizeMatMul", "MatMulIntegerToFloat"}, sorted(ops)


def test_recipe_record_matches_the_graph(artifacts):
    """The nodes the recipe left float are float MatMuls in the published graph, and the
    record says how they were chosen."""
    config = read_config(artifacts / "onnx" / "int8")
    recipe = config["int8_recipe"]
    assert recipe["probe_texts"] >= 300 and len(recipe["smoothquant_trials"]) >= 2
    by_name = {n.name: n.op_type for n in graph(artifacts / "onnx" / "int8").node}
    for name in recipe["excluded_nodes"]:
        assert by_name.get(name) in ("MatMul", "Attention"), name
    if recipe["smoothquant_alpha"] is not None:
        assert any(n.endswith("_smooth") for n in by_name)


def test_smoothing_keeps_the_float_function(artifacts, tmp_path):
    src = artifacts / "onnx" / "opt"
    smooth_graph(src, tmp_path / "smoothed", TEXTS * 4, alpha=0.6)
    muls = [n for n in graph(tmp_path / "smoothed").node if n.name.endswith("_smooth")]
    # per layer: Attention (QKV), attention output, feed-forward in and out
    assert len(muls) == 4 * read_config(src)["layers"]
    a, b = OnnxEncoder(src).encode(TEXTS), OnnxEncoder(tmp_path / "smoothed").encode(TEXTS)
    assert np.abs(a - b).max() < 1e-4
    shutil.rmtree(tmp_path / "smoothed")


def test_sensitivity_candidates_and_probe(artifacts):
    from export.quantize import OPS_TO_QUANTIZE
    from export.sensitivity import PROBE_TEXTS, candidate_nodes, meets, probe_texts

    layers = read_config(artifacts / "onnx" / "fp32")["layers"]
    nodes = candidate_nodes(artifacts / "onnx" / "fp32" / "model.onnx", OPS_TO_QUANTIZE)
    ops = [n["op"] for n in nodes]
    assert ops.count("MatMul") == 6 * layers  # Q, K, V, output, FF in, FF out; no Q.K^T
    assert 1 <= ops.count("Gather") <= 3  # the embedding tables, not shape lookups
    cos = np.linspace(0.9, 1.0, 200)
    idx = probe_texts(list(range(200)), cos)
    assert len(idx) == PROBE_TEXTS == len(set(idx)) and set(range(PROBE_TEXTS // 2)) <= set(idx)
    assert meets({"mean_cosine": 0.995, "min_cosine": 0.99})
    assert not meets({"mean_cosine": 0.995, "min_cosine": 0.98})
