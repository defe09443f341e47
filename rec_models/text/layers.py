"""Torch helpers for training the top layers of a BERT-family encoder over cached lower states.

Used by the encoder fine-tuning (`rec_models.text.finetune`) and the export's distillation
(`export.distill`): the frozen bottom runs once per text, its output is kept unpadded in fp16,
and each step pads a batch of similar lengths and runs only the trainable layers.
"""

from __future__ import annotations

import random


def mean_pool(hidden, mask):
    """(B, T, d), (B, T) -> (B, d) mean over the mask, unnormalised."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def length_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length (little padding), in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def pad_states(rows: list, lengths: list[int]):
    """Variable-length (T_i, d) fp16 rows -> (B, T, d) float32 and the (B, T) mask."""
    import torch

    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True).float()  # (B, T, d)
    mask = torch.arange(padded.shape[1])[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    return padded, mask.long()


def run_layers(model, hidden, mask, start: int, stop: int | None = None):
    """`model.encoder.layer[start:stop]` (a BertModel's) over (B, T, d) `hidden`."""
    import torch

    ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min  # (B, 1, 1, T)
    for layer in model.encoder.layer[start:stop]:
        hidden = layer(hidden, attention_mask=ext)[0]
    return hidden  # (B, T, d)
