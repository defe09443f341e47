"""The real item and profile texts that gates and distillation use (`artifacts/texts.json`)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Texts:
    items: list[str]
    users: list[str]

    @property
    def all(self) -> list[str]:
        return self.items + self.users


@dataclass(frozen=True)
class GateSplit:
    """Gate texts (items + held-out users) and the distillation texts (the rest of the users)."""

    gate: list[str]
    distill: list[str]


def load_texts(artifacts_dir: Path) -> Texts:
    path = Path(artifacts_dir) / "texts.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make train` first (it writes the texts)")
    data = json.loads(path.read_text())
    items, users = list(data.get("items", [])), list(data.get("users", []))
    if not items or not users:
        raise ValueError(f"{path}: 'items' and 'users' must be non-empty lists of texts")
    return Texts(items, users)


def split_texts(texts: Texts, n_items: int = 300, n_users: int = 300, seed: int = 42) -> GateSplit:
    """A seeded sample of >= 500 real texts for the gates. The sampled users are held out of
    distillation so the distilled gate measures texts the student never saw; every item stays in
    (the catalog is embedded as is at serving time)."""
    rng = random.Random(seed)
    items = rng.sample(texts.items, min(n_items, len(texts.items)))
    user_idx = set(rng.sample(range(len(texts.users)), min(n_users, len(texts.users) // 2)))
    gate_users = [t for i, t in enumerate(texts.users) if i in user_idx]
    held_out = set(gate_users)  # by text: a duplicate profile must not leak into training
    train_users = [t for t in texts.users if t not in held_out]
    return GateSplit(gate=items + gate_users, distill=texts.items + train_users)
