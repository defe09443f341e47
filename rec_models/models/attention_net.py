"""The attention model's torch network: item tower, profile tower and the user tower's history
encoder, "bilinear" (one attention read of the history by the profile) or "self_attention"
(the history first contextualised by causal-free self-attention blocks with positions counted
from the most recent item, then read by the profile the same way).

Shapes: item_emb (N, d_text); profile_emb (B, d_text); history_emb (B, L, d_text) left-padded,
most recent last; history_mask (B, L) 1 for real items. Everything is einsum / softmax / layer
norm, so torch.onnx.export (export/scorer.py) traces it with a dynamic history length.
"""

from __future__ import annotations

from typing import Any

TOWERS = ("bilinear", "self_attention")


def build_net(
    d_text: int,
    dim: int,
    tower: str = "bilinear",
    layers: int = 1,
    heads: int = 2,
    max_history: int = 50,
    hidden: int = 0,
) -> Any:
    import torch
    from torch import nn

    if tower not in TOWERS:
        raise ValueError(f"attention.tower '{tower}': choose one of {', '.join(TOWERS)}")
    hidden = hidden or 2 * dim  # width of the towers' hidden layer
    if dim % heads:
        raise ValueError(f"attention.heads: {heads} does not divide attention.dim {dim}")

    class Tower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(d_text, hidden), nn.GELU(), nn.Linear(hidden, dim))
            self.skip = nn.Linear(d_text, dim, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) + self.skip(x)

    class Block(nn.Module):
        """Pre-norm multi-head self-attention + feed-forward over the history, padding masked."""

        def __init__(self) -> None:
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, n, _ = h.shape
            q, k, v = self.qkv(self.norm1(h)).reshape(b, n, 3, heads, dim // heads).unbind(2)
            logits = torch.einsum("bihe,bjhe->bhij", q, k) / (dim // heads) ** 0.5
            logits = logits.masked_fill(mask[:, None, None, :] <= 0, -1e4)
            a = torch.softmax(logits, dim=-1)
            h = h + self.proj(torch.einsum("bhij,bjhe->bihe", a, v).reshape(b, n, dim))
            return h + self.ff(self.norm2(h))

    class AttentionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dim = dim
            self.item = Tower()  # item tower, shared by history items
            self.profile = Tower()
            self.W = nn.Parameter(torch.eye(dim))  # bilinear attention u^T W v
            self.out = nn.Linear(2 * dim, dim)
            n_blocks = layers if tower == "self_attention" else 0
            self.blocks = nn.ModuleList(Block() for _ in range(n_blocks))
            if len(self.blocks):
                # row max_history - 1 = the most recent item: the service sends histories
                # shorter than max_history, right-aligned, so positions count from the end
                self.pos = nn.Parameter(torch.zeros(max_history, dim))

        def item_tower(self, item_emb: torch.Tensor) -> torch.Tensor:
            return nn.functional.normalize(self.item(item_emb), dim=-1)  # (N, dim)

        def user_tower(
            self, profile_emb: torch.Tensor, history_emb: torch.Tensor, history_mask: torch.Tensor
        ) -> torch.Tensor:
            return self.attend(self.profile(profile_emb), self.item(history_emb), history_mask)

        def attend(
            self, q: torch.Tensor, h: torch.Tensor, history_mask: torch.Tensor
        ) -> torch.Tensor:
            """q (B, dim) projected profile, h (B, L, dim) projected history -> (B, dim) user."""
            if len(self.blocks):
                n = h.shape[1]
                h = h + self.pos[self.pos.shape[0] - n :]
                for block in self.blocks:
                    h = block(h, history_mask)
            logits = torch.einsum("bd,de,ble->bl", q, self.W, h) / self.dim**0.5  # (B, L)
            logits = logits.masked_fill(history_mask <= 0, -1e4)
            a = torch.softmax(logits, dim=-1) * (history_mask > 0)  # empty history -> all zero
            context = torch.einsum("bl,ble->be", a, h)  # (B, dim)
            return nn.functional.normalize(self.out(torch.cat([q, context], -1)), dim=-1)

    return AttentionNet()
