"""Step 4: a shallower student distilled from the teacher on the project's own texts.

The student keeps the teacher's width and embeddings and two of its six layers (MiniLM-L6 ->
layers [0, 5]); the embedding tables stay frozen, so their output is computed once, next to the
teacher's targets, and training runs only the transformer layers. They learn to reproduce the
teacher's token states and mean-pooled sentence embeddings of the real item and profile texts
(loss = 1 - cosine + MSE on the pooled vectors + MSE on the token states). The student is saved
as a Hugging Face folder and exported + quantized like `int8`: the `distilled_int8` variant.

Measured on the 2-core machine (cosine on held-out users, NDCG@10 of the trained hybrid vs fp32):
3 layers / 4 epochs: cosine 0.970, NDCG -1.3%, ~1.9x faster than int8 (dropping 3 of 6 layers
cannot give 2x: embeddings, tokenization and pooling stay); 2 layers / 6 epochs: cosine 0.969,
NDCG -1.7%, 2.2-2.7x faster; 2 layers / 10 epochs: NDCG -1.1%. Hence 2 layers, 10 epochs.

Options for smaller students (the speed/quality frontier: `python -m benchmarks.students`): a
single layer, and a narrower feed-forward (`ff_size`: the kept layers' FF neurons with the largest
mean |activation| x output-weight norm on the build texts, before training; the teacher's FF
is two thirds of a layer's matmul work).
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rec_models.text.layers import length_batches, mean_pool, pad_states, run_layers

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
LAYER_CHOICES = {1: [0], 2: [0, 5], 3: [0, 2, 5], 4: [0, 2, 4, 5]}  # of MiniLM-L6's six
FF_SAMPLE = 512  # build texts whose teacher activations rank the FF neurons


@dataclass
class DistillConfig:
    keep_layers: list[int] = field(default_factory=lambda: [0, 5])  # teacher layers kept
    epochs: int = 10  # ~80 s for 6 epochs on 2 idle cores; 10 buy NDCG margin
    batch_size: int = 32
    lr: float = 1e-3  # one-cycle peak; 2e-4 and 5e-4 left the cosine 0.01-0.02 lower
    freeze_first_layer: bool = False  # True: also freeze (and cache) the first kept layer
    max_length: int = 128
    seed: int = 42
    threads: int = 2  # the export budget assumes a 2-core machine
    ff_size: int | None = None  # FF neurons kept per layer (None: the teacher's, 1536)


class DistillationError(RuntimeError):
    """Training diverged (non-finite loss)."""


def student_from_teacher(teacher, keep_layers: list[int]):
    """A copy of `teacher` (BertModel) with only `keep_layers` of its encoder, same width."""
    import torch

    n = teacher.config.num_hidden_layers
    if not keep_layers or any(not 0 <= i < n for i in keep_layers):
        raise ValueError(f"keep_layers: {keep_layers} must be >= 1 indices in [0, {n})")
    student = copy.deepcopy(teacher)
    student.encoder.layer = torch.nn.ModuleList(
        [copy.deepcopy(teacher.encoder.layer[i]) for i in keep_layers]
    )
    student.config.num_hidden_layers = len(keep_layers)
    return student


def ff_importance(teacher, tokenizer, texts: list[str], cfg: DistillConfig):
    """(len(keep_layers), FF) score per FF neuron of each kept teacher layer: mean |GELU output|
    over the real tokens of a seeded sample of `texts`, times the norm of the neuron's output
    weights (what it adds to the residual stream, on average)."""
    import torch

    layers = [teacher.encoder.layer[i] for i in cfg.keep_layers]
    sums = torch.zeros(len(layers), teacher.config.intermediate_size, dtype=torch.float64)
    mask: list = []  # the current batch's (B, T, 1) attention mask, read by the hooks

    def hook(j: int):
        def record(_module, _inputs, out):  # out: (B, T, FF)
            sums[j] += (out.abs() * mask[0]).sum((0, 1)).double()

        return record

    handles = [layer.intermediate.register_forward_hook(hook(j)) for j, layer in enumerate(layers)]
    sample = random.Random(cfg.seed).sample(texts, min(FF_SAMPLE, len(texts)))
    tokens = 0
    try:
        with torch.inference_mode():
            for start in range(0, len(sample), 64):
                batch = tokenizer(
                    sample[start : start + 64],
                    padding=True,
                    truncation=True,
                    max_length=cfg.max_length,
                    return_tensors="pt",
                )
                mask[:] = [batch["attention_mask"].unsqueeze(-1).float()]
                tokens += int(batch["attention_mask"].sum())
                teacher(**batch)
    finally:
        for h in handles:
            h.remove()
    out_norms = torch.stack([layer.output.dense.weight.norm(dim=0) for layer in layers])
    return (sums / max(tokens, 1)).float() * out_norms  # (L, FF)


def prune_ff(student, importance, ff_size: int) -> None:
    """Keep the `ff_size` FF neurons of each student layer with the highest `importance` (L, FF),
    in their original order: intermediate rows and output columns, biases alike."""
    import torch

    if not 1 <= ff_size <= importance.shape[1]:
        raise ValueError(f"ff_size: {ff_size} must be in [1, {importance.shape[1]}]")
    for layer, scores in zip(student.encoder.layer, importance, strict=True):
        keep = torch.topk(scores, ff_size).indices.sort().values
        inner, outer = layer.intermediate.dense, layer.output.dense
        new_inner = torch.nn.Linear(inner.in_features, ff_size)
        new_outer = torch.nn.Linear(ff_size, outer.out_features)
        with torch.no_grad():
            new_inner.weight.copy_(inner.weight[keep])
            new_inner.bias.copy_(inner.bias[keep])
            new_outer.weight.copy_(outer.weight[:, keep])
            new_outer.bias.copy_(outer.bias)
        layer.intermediate.dense, layer.output.dense = new_inner, new_outer
    student.config.intermediate_size = ff_size


def _resolve(
    layers: int | list[int], epochs: int | None, seed: int, config: DistillConfig | None
) -> DistillConfig:
    cfg = copy.deepcopy(config) if config else DistillConfig(seed=seed)
    if isinstance(layers, list):
        cfg.keep_layers = list(layers)
    elif layers != len(cfg.keep_layers):
        if layers not in LAYER_CHOICES:
            raise ValueError(f"layers: {layers} is not one of {sorted(LAYER_CHOICES)}")
        cfg.keep_layers = LAYER_CHOICES[layers]
    if epochs is not None:
        cfg.epochs = epochs
    return cfg


@dataclass
class Targets:
    """What one teacher pass leaves for training: per text (unpadded, fp16) the teacher's token
    states and the student's frozen-bottom output, plus the teacher's pooled vectors (N, d)."""

    lengths: list[int]
    teacher_states: list
    bottom_states: list
    pooled: object  # torch.Tensor (N, d)
    start: int  # index of the first trainable student layer


def teacher_targets(
    teacher, student, tokenizer, texts: list[str], cfg: DistillConfig, rng: random.Random
) -> Targets:
    import torch
    from tqdm.auto import tqdm

    encoded = tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    start = 1 if cfg.freeze_first_layer else 0
    targets = Targets(
        lengths,
        [None] * len(texts),
        [None] * len(texts),
        torch.empty(len(texts), teacher.config.hidden_size),
        start,
    )
    with torch.inference_mode():
        for idx in tqdm(length_batches(lengths, 64, rng), desc="teacher targets", unit="batch"):
            batch = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=cfg.max_length,
                return_tensors="pt",
            )
            hidden = teacher(**batch).last_hidden_state  # (B, T, d)
            targets.pooled[idx] = mean_pool(hidden, batch["attention_mask"])
            bottom = student.embeddings(
                input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"]
            )  # (B, T, d)
            if start:
                ext = student.get_extended_attention_mask(
                    batch["attention_mask"], batch["input_ids"].shape
                )
                bottom = student.encoder.layer[0](bottom, attention_mask=ext)[0]
            for row, i in enumerate(idx):
                targets.teacher_states[i] = hidden[row, : lengths[i]].half()
                targets.bottom_states[i] = bottom[row, : lengths[i]].half()
    return targets


def train_student(student, targets: Targets, cfg: DistillConfig, rng: random.Random) -> float:
    """One-cycle AdamW over the trainable layers; returns the last batch's loss."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    student.requires_grad_(False)
    params = [p for layer in student.encoder.layer[targets.start :] for p in layer.parameters()]
    for p in params:
        p.requires_grad_(True)
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    steps = cfg.epochs * ((len(targets.lengths) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        optim, max_lr=cfg.lr, total_steps=steps, pct_start=0.1
    )
    bar = tqdm(total=steps, desc=f"distilling {len(cfg.keep_layers)} layers", unit="step")
    loss_value = float("nan")
    for _epoch in range(cfg.epochs):
        for idx in length_batches(targets.lengths, cfg.batch_size, rng):
            lens = [targets.lengths[i] for i in idx]
            bottom, mask = pad_states([targets.bottom_states[i] for i in idx], lens)
            target_h, _ = pad_states([targets.teacher_states[i] for i in idx], lens)  # (B, T, d)
            hidden = run_layers(student, bottom, mask, targets.start)  # (B, T, d)
            pred, target = mean_pool(hidden, mask), targets.pooled[idx]  # (B, d)
            cos = F.cosine_similarity(pred, target, dim=-1)  # (B,)
            token_mse = (((hidden - target_h) ** 2).mean(-1) * mask).sum() / mask.sum()
            loss = (1 - cos).mean() + F.mse_loss(pred, target) + token_mse
            if not torch.isfinite(loss):
                raise DistillationError(f"non-finite loss at step {bar.n}")
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            sched.step()
            loss_value = loss.item()
            bar.set_postfix(loss=f"{loss_value:.4f}", cos=f"{cos.mean().item():.4f}")
            bar.update()
    bar.close()
    student.requires_grad_(True)
    return loss_value


def student_cosines(student, targets: Targets, rng: random.Random) -> np.ndarray:
    """(N,) cosine of the student's pooled embedding to the teacher's, per training text."""
    import torch

    cosines = np.empty(len(targets.lengths), dtype=np.float32)
    with torch.inference_mode():
        for idx in length_batches(targets.lengths, 64, rng):
            lens = [targets.lengths[i] for i in idx]
            bottom, mask = pad_states([targets.bottom_states[i] for i in idx], lens)
            pred = mean_pool(run_layers(student, bottom, mask, targets.start), mask)  # (B, d)
            cosines[idx] = torch.nn.functional.cosine_similarity(
                pred, targets.pooled[idx], -1
            ).numpy()
    return cosines


def distill(
    teacher_path: str | Path | None,
    texts: list[str],
    out_dir: Path,
    layers: int | list[int] = 2,
    epochs: int | None = None,
    seed: int = 42,
    config: DistillConfig | None = None,
) -> dict:
    """Train the student on `texts`, save it as an HF folder in `out_dir`; returns a summary
    (layers kept, parameters, seconds, final loss, cosine to the teacher on `texts`)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rec_models.text.encoder import resolve_model_path

    if not texts:
        raise ValueError("texts: distillation needs a non-empty list of texts")
    cfg = _resolve(layers, epochs, seed, config)
    src = resolve_model_path(teacher_path)
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(src)
    teacher = AutoModel.from_pretrained(src).eval()
    # eval(): no dropout; with a few hundred steps it only slows the fit
    student = student_from_teacher(teacher, cfg.keep_layers).eval()
    if cfg.ff_size is not None:  # before the targets: a frozen first layer is cached pruned
        prune_ff(student, ff_importance(teacher, tokenizer, texts, cfg), cfg.ff_size)
    targets = teacher_targets(teacher, student, tokenizer, texts, cfg, rng)
    del teacher
    final_loss = train_student(student, targets, cfg, rng)
    cosines = student_cosines(student, targets, rng)

    out_dir = Path(out_dir)
    student.save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out_dir / name)
    summary = {
        "keep_layers": cfg.keep_layers,
        "layers": len(cfg.keep_layers),
        "ff_size": student.config.intermediate_size,
        "parameters": int(sum(p.numel() for p in student.parameters())),
        "texts": len(texts),
        "seconds": round(time.perf_counter() - t0, 1),
        "final_loss": round(final_loss, 5),
        "train_mean_cosine": float(cosines.mean()),
        "train_min_cosine": float(cosines.min()),
        "config": asdict(cfg),
    }
    (out_dir / "distillation.json").write_text(json.dumps(summary, indent=2))
    return summary
