"""Step 4: a shallower student distilled from the teacher on the project's own texts.

The student keeps the teacher's width and embeddings and two of its six layers (MiniLM-L6 ->
layers [0, 5]); the embedding tables stay frozen, so their output is computed once, next to the
teacher's targets, and training runs only the transformer layers. They learn to reproduce the
teacher's token states and mean-pooled sentence embeddings of the real item and profile texts
(loss = 1 - cosine + MSE on the pooled vectors + MSE on the token states). The student is saved
as a Hugging Face folder and exported + quantized like `int8`: the `distilled_int8` variant.

Measured on the 2-core machine (held-out users, NDCG@10 of the trained hybrid vs fp32):
3 layers / 4 epochs: cosine 0.970, NDCG -1.3%, ~1.9x faster than int8 (the 3 dropped layers
cannot give 2x: embeddings, tokenization and pooling stay); 2 layers / 6 epochs: cosine 0.969,
NDCG -1.7%, ~2.7x faster. Hence the 2-layer default.
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

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
LAYER_CHOICES = {2: [0, 5], 3: [0, 2, 5], 4: [0, 2, 4, 5]}  # of MiniLM-L6's six


@dataclass
class DistillConfig:
    keep_layers: list[int] = field(default_factory=lambda: [0, 5])  # teacher layers kept
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3  # one-cycle peak; 2e-4 and 5e-4 left the cosine 0.01-0.02 lower
    freeze_first_layer: bool = False  # True: also freeze (and cache) the first kept layer
    max_length: int = 128
    seed: int = 42
    threads: int = 2  # the export budget assumes a 2-core machine


class DistillationError(RuntimeError):
    """Training diverged (non-finite loss)."""


def student_from_teacher(teacher, keep_layers: list[int]):
    """A copy of `teacher` (BertModel) with only `keep_layers` of its encoder, same width."""
    import torch

    n = teacher.config.num_hidden_layers
    if len(keep_layers) < 2 or any(not 0 <= i < n for i in keep_layers):
        raise ValueError(f"keep_layers: {keep_layers} must be >= 2 indices in [0, {n})")
    student = copy.deepcopy(teacher)
    student.encoder.layer = torch.nn.ModuleList(
        [copy.deepcopy(teacher.encoder.layer[i]) for i in keep_layers]
    )
    student.config.num_hidden_layers = len(keep_layers)
    return student


def _mean(hidden, mask):
    """(B, T, d), (B, T) -> (B, d) mean over the mask, unnormalised."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length (little padding), in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _pad(rows: list, lengths: list[int]):
    """Variable-length (T_i, d) fp16 rows -> (B, T, d) float32 and the (B, T) mask."""
    import torch

    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True).float()  # (B, T, d)
    mask = torch.arange(padded.shape[1])[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return padded, mask.long()


def _upper(student, bottom, mask, start: int):
    """The trainable layers (from `start` on) over the cached bottom states."""
    import torch

    ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min  # (B, 1, 1, T)
    hidden = bottom
    for layer in student.encoder.layer[start:]:
        hidden = layer(hidden, attention_mask=ext)[0]
    return hidden  # (B, T, d)


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
    from tqdm.auto import tqdm
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

    lengths = [
        len(ids)
        for ids in tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    ]
    # One pass: the teacher's token states and pooled vectors, and the output of the student's
    # frozen bottom (embeddings [+ first layer]), kept unpadded in fp16 (~0.2 GB for 3k texts).
    start = 1 if cfg.freeze_first_layer else 0
    top_t: list = [None] * len(texts)
    bottom_s: list = [None] * len(texts)
    pooled_t = torch.empty(len(texts), teacher.config.hidden_size)  # (N, d)
    with torch.inference_mode():
        for idx in tqdm(_batches(lengths, 64, rng), desc="teacher targets", unit="batch"):
            batch = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=cfg.max_length,
                return_tensors="pt",
            )
            hidden = teacher(**batch).last_hidden_state  # (B, T, d)
            pooled_t[idx] = _mean(hidden, batch["attention_mask"])
            ext = student.get_extended_attention_mask(
                batch["attention_mask"], batch["input_ids"].shape
            )
            bottom = student.embeddings(
                input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"]
            )  # (B, T, d)
            if start:
                bottom = student.encoder.layer[0](bottom, attention_mask=ext)[0]
            for row, i in enumerate(idx):
                top_t[i] = hidden[row, : lengths[i]].half()
                bottom_s[i] = bottom[row, : lengths[i]].half()
    del teacher

    student.requires_grad_(False)
    params = [p for layer in student.encoder.layer[start:] for p in layer.parameters()]
    for p in params:
        p.requires_grad_(True)
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    steps = cfg.epochs * ((len(texts) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        optim, max_lr=cfg.lr, total_steps=steps, pct_start=0.1
    )
    bar = tqdm(total=steps, desc=f"distilling {len(cfg.keep_layers)} layers", unit="step")
    loss_value = float("nan")
    for _epoch in range(cfg.epochs):
        for idx in _batches(lengths, cfg.batch_size, rng):
            lens = [lengths[i] for i in idx]
            bottom, mask = _pad([bottom_s[i] for i in idx], lens)  # (B, T, d), (B, T)
            target_h, _ = _pad([top_t[i] for i in idx], lens)  # (B, T, d)
            hidden = _upper(student, bottom, mask, start)  # (B, T, d)
            pred, target = _mean(hidden, mask), pooled_t[idx]  # (B, d)
            cos = torch.nn.functional.cosine_similarity(pred, target, dim=-1)  # (B,)
            token_mse = (((hidden - target_h) ** 2).mean(-1) * mask).sum() / mask.sum()
            loss = (1 - cos).mean() + torch.nn.functional.mse_loss(pred, target) + token_mse
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

    cosines = np.empty(len(texts), dtype=np.float32)
    with torch.inference_mode():
        for idx in _batches(lengths, 64, rng):
            lens = [lengths[i] for i in idx]
            bottom, mask = _pad([bottom_s[i] for i in idx], lens)
            pred = _mean(_upper(student, bottom, mask, start), mask)
            cosines[idx] = torch.nn.functional.cosine_similarity(pred, pooled_t[idx], -1).numpy()
    out_dir = Path(out_dir)
    student.requires_grad_(True)
    student.save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out_dir / name)
    summary = {
        "keep_layers": cfg.keep_layers,
        "layers": len(cfg.keep_layers),
        "parameters": int(sum(p.numel() for p in student.parameters())),
        "texts": len(texts),
        "seconds": round(time.perf_counter() - t0, 1),
        "final_loss": round(loss_value, 5),
        "train_mean_cosine": float(cosines.mean()),
        "train_min_cosine": float(cosines.min()),
        "config": asdict(cfg),
    }
    (out_dir / "distillation.json").write_text(json.dumps(summary, indent=2))
    return summary
