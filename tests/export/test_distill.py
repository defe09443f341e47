"""The distillation's student options: one layer and a pruned feed-forward (export/distill.py)."""

from __future__ import annotations

import json

import pytest
import torch

from export.distill import (
    DistillConfig,
    distill,
    ff_importance,
    prune_ff,
    student_from_teacher,
)


def tiny_bert(layers: int = 2, ff: int = 32):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=ff)  # fmt: skip
    return BertModel(config).eval()


def test_prune_ff_keeps_the_most_important_neurons_and_their_function():
    teacher = tiny_bert()
    student = student_from_teacher(teacher, [1])
    importance = torch.rand(1, 32)
    prune_ff(student, importance, 8)
    keep = torch.topk(importance[0], 8).indices.sort().values
    layer, full = student.encoder.layer[0], teacher.encoder.layer[1]
    assert student.config.intermediate_size == 8
    assert torch.equal(layer.intermediate.dense.weight, full.intermediate.dense.weight[keep])
    # the pruned FF = the teacher's FF with every other neuron's activation zeroed
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        act = full.intermediate(x)  # (3, 5, 32)
        masked = torch.zeros_like(act)
        masked[..., keep] = act[..., keep]
        expected = full.output.dense(masked)
        got = layer.output.dense(layer.intermediate(x))
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="ff_size"):
        prune_ff(student_from_teacher(teacher, [0]), importance, 33)


def test_ff_importance_scores_a_silenced_neuron_zero():
    from transformers import AutoTokenizer

    from rec_models.text.encoder import resolve_model_path

    teacher = tiny_bert()
    with torch.no_grad():
        teacher.encoder.layer[1].output.dense.weight[:, 7] = 0.0  # neuron 7 adds nothing
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(None))
    texts = ["a b c", "d e", "f"]  # ids beyond the tiny vocab would not embed: map into it
    tokenizer_call = tokenizer.__call__

    def small_ids(*args, **kwargs):
        batch = tokenizer_call(*args, **kwargs)
        batch["input_ids"] = batch["input_ids"] % 64
        return batch

    cfg = DistillConfig(keep_layers=[0, 1])
    scores = ff_importance(teacher, small_ids, texts, cfg)
    assert scores.shape == (2, 32)
    assert scores[1, 7] == 0 and (scores[1].sum() > 0) and (scores[0] > 0).all()


def test_distill_one_layer_narrow_ff(tmp_path):
    from transformers import AutoModel

    texts = [f"movie {i}: a drama about {w}" for i, w in enumerate(["love", "war", "space"] * 3)]
    cfg = DistillConfig(keep_layers=[0], epochs=1, batch_size=4, ff_size=64)
    summary = distill(None, texts, tmp_path / "student", config=cfg, layers=[0])
    student = AutoModel.from_pretrained(tmp_path / "student")
    assert student.config.num_hidden_layers == 1 and len(student.encoder.layer) == 1
    assert student.encoder.layer[0].intermediate.dense.out_features == 64
    assert summary["layers"] == 1 and summary["ff_size"] == 64
    assert json.loads((tmp_path / "student" / "distillation.json").read_text())["ff_size"] == 64
    assert 0 < summary["train_mean_cosine"] <= 1.0
    with pytest.raises(ValueError, match="keep_layers"):
        distill(None, texts, tmp_path / "none", layers=[])
