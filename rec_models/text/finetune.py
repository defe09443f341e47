"""Optional contrastive fine-tuning of the text encoder: user profile text -> clicked item text.

Off by default; `[encoder] finetune = true` in a config, or `python -m rec_models.train
--finetune-encoder`. What it trains on (built by `rec_models.pipeline.finetune_pairs`): each
user's positives are split in two at random; the profile text is written from one half, and the
other half are the items that profile should retrieve, so the model cannot win by matching a title
quoted in the profile to itself.

The bottom of the encoder is frozen and run once per text (outputs kept unpadded in fp16); only
the top `finetune_layers` transformer layers are trained, with a symmetric in-batch InfoNCE loss:
for a batch of users, each with one of its positives drawn afresh every epoch, the other users'
items are the negatives, except items the row's user also clicked (masked). The result is a
complete Hugging Face folder that the pipeline uses like any `encoder.model_path`.

Leakage: it sees only the interactions it is given; `rec_models.train` fine-tunes once per
training split (the validation fit, each protocol, the served model).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from rec_models.config import EncoderConfig
from rec_models.text.encoder import resolve_model_path
from rec_models.text.layers import length_batches, mean_pool, pad_states, run_layers


class FinetuneError(RuntimeError):
    """Fine-tuning cannot run on this input, or diverged."""


def bottom_states(model, tokenizer, texts: list[str], stop: int, max_length: int):
    """Per text, the (T_i, d) fp16 output of the embeddings and layers [0, stop); and lengths."""
    import torch
    from tqdm.auto import tqdm

    lengths = [
        len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    ]
    states: list = [None] * len(texts)
    with torch.inference_mode():
        for idx in tqdm(
            length_batches(lengths, 64, random.Random(0)), desc="fine-tune inputs", unit="batch"
        ):
            batch = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model.embeddings(
                input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids")
            )  # (B, T, d)
            hidden = run_layers(model, hidden, batch["attention_mask"], 0, stop)
            for row, i in enumerate(idx):
                states[i] = hidden[row, : lengths[i]].half()
    return states, lengths


def _embed(model, states: list, lengths: list[int], rows: list[int], start: int):
    """(B, d) L2-normalised embeddings of `rows` through the trainable layers."""
    import torch

    hidden, mask = pad_states([states[i] for i in rows], [lengths[i] for i in rows])
    pooled = mean_pool(run_layers(model, hidden, mask, start), mask)  # (B, d)
    return torch.nn.functional.normalize(pooled, dim=-1)


def finetune_encoder(
    profiles: list[str],
    item_texts: list[str],
    positives: list[np.ndarray],
    out_dir: str | Path,
    cfg: EncoderConfig,
    seed: int = 42,
) -> dict:
    """Fine-tune `cfg.model_path` (default: the bundled MiniLM) so that user `u`'s profile text
    `profiles[u]` retrieves `item_texts[i]` for i in `positives[u]`; save to `out_dir`.

    Returns a summary: users, steps, seconds, mean loss of the first and last epoch."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    if len(profiles) != len(positives):
        raise FinetuneError(f"profiles ({len(profiles)}) and positives ({len(positives)}) differ")
    users = [u for u, p in enumerate(positives) if len(p)]
    if len(users) < 2:
        raise FinetuneError("encoder.finetune: fewer than 2 users have held-out positive items")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    src = resolve_model_path(cfg.model_path or None)
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModel.from_pretrained(src).eval()  # eval: no dropout, deterministic
    n_layers = int(model.config.num_hidden_layers)
    if not 1 <= cfg.finetune_layers <= n_layers:
        raise FinetuneError(
            f"encoder.finetune_layers: {cfg.finetune_layers} is not in [1, {n_layers}]"
        )
    start = n_layers - cfg.finetune_layers
    p_states, p_len = bottom_states(
        model, tokenizer, [profiles[u] for u in users], start, cfg.max_length
    )
    i_states, i_len = bottom_states(model, tokenizer, item_texts, start, cfg.max_length)
    clicked = [set(positives[u].tolist()) for u in users]

    model.requires_grad_(False)
    params = [p for layer in model.encoder.layer[start:] for p in layer.parameters()]
    for p in params:
        p.requires_grad_(True)
    optim = torch.optim.AdamW(params, lr=cfg.finetune_lr, weight_decay=0.01)
    per_epoch = len(length_batches(p_len, cfg.finetune_batch_size, rng))
    steps = cfg.finetune_epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        optim, max_lr=cfg.finetune_lr, total_steps=steps, pct_start=0.1
    )
    bar = tqdm(total=steps, desc=f"fine-tuning encoder (top {cfg.finetune_layers})", unit="step")
    epoch_loss: list[float] = []
    for _epoch in range(cfg.finetune_epochs):
        losses = []
        for rows in length_batches(p_len, cfg.finetune_batch_size, rng):
            targets = [rng.choice(positives[users[r]].tolist()) for r in rows]
            p = _embed(model, p_states, p_len, rows, start)  # (B, d)
            q = _embed(model, i_states, i_len, targets, start)  # (B, d)
            logits = p @ q.T / cfg.finetune_temperature  # (B, B)
            false_neg = torch.tensor(
                [
                    [a != b and t in clicked[r] for b, t in enumerate(targets)]
                    for a, r in enumerate(rows)
                ]
            )  # (B, B): another row's item this row's user also clicked
            logits = logits.masked_fill(false_neg, float("-inf"))
            labels = torch.arange(len(rows))
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            if not torch.isfinite(loss):
                raise FinetuneError(f"non-finite loss at step {bar.n}")
            optim.zero_grad()
            loss.backward()
            optim.step()
            sched.step()
            losses.append(float(loss.item()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.update()
        epoch_loss.append(float(np.mean(losses)))
    bar.close()
    model.requires_grad_(True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "users": len(users),
        "pairs": int(sum(len(positives[u]) for u in users)),
        "trained_layers": cfg.finetune_layers,
        "steps": steps,
        "seconds": round(time.perf_counter() - t0, 1),
        "loss_first_epoch": round(epoch_loss[0], 4),
        "loss_last_epoch": round(epoch_loss[-1], 4),
    }
