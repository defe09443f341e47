"""The contract every recommender follows, and the indexed training data they all take."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# (user_idx, item_idx, rating, timestamp) of the interactions a profile may see -> (n_users, d)
ProfileEncoder = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def training_threads(requested: int) -> int:
    """Threads for training: `requested` if > 0; else (auto) every core when the machine is
    otherwise idle, one when other work already keeps it busy. On the 2-core machine, 2 threads
    fit the attention model 1.4x faster when idle, but were several times slower than 1 under a
    load average of 5+, where each thread waits on its preempted sibling."""
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return cores if busy < cores - 0.5 else 1


class DivergedError(RuntimeError):
    """Training produced NaN/inf parameters or loss: no silent bad model."""


@dataclass
class TrainData:
    """Interactions in index space (users 0..n_users-1, items 0..n_items-1) plus text features.

    users, items: (nnz,) int64; ratings: (nnz,) float32; timestamps: (nnz,) int64: the positives
    (clicks, conversions; every row of an "interactions" dataset), what models fit on.
    item_emb: (n_items, d) L2-normalised item text embeddings (the whole catalog, cold items too).
    encode_profiles: builds (n_users, d) profile embeddings from a subset of the positives.
    weights: (nnz,) float32 confidence of each positive (a conversion > a click); None = all 1.
    shown_users, shown_items: (n_shown,) int64 impressions shown but not clicked, the logged
    negatives; None when the log has none.
    """

    n_users: int
    n_items: int
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    item_emb: np.ndarray | None = None
    encode_profiles: ProfileEncoder | None = None
    positive_threshold: float = 4.0
    weights: np.ndarray | None = None
    shown_users: np.ndarray | None = None
    shown_items: np.ndarray | None = None

    def seen(self) -> list[np.ndarray]:
        """Per user, the item indices interacted with (for exclude_seen)."""
        order = np.argsort(self.users, kind="stable")
        bounds = np.searchsorted(self.users[order], np.arange(self.n_users + 1))
        items = self.items[order]
        return [items[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

    def item_counts(self) -> np.ndarray:
        """(n_items,) positives per item (popularity by clicks, not by impressions)."""
        return np.bincount(self.items, minlength=self.n_items)

    def warm_items(self) -> np.ndarray:
        """(n_items,) bool: items with any training row, clicked or only shown."""
        warm = self.item_counts() > 0
        if self.shown_items is not None:
            warm[self.shown_items] = True
        return warm

    def shown_by_user(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr (n_users + 1,), items) of each user's shown-but-not-clicked items (CSR)."""
        if self.shown_users is None or self.shown_items is None:
            return np.zeros(self.n_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        order = np.argsort(self.shown_users, kind="stable")
        indptr = np.searchsorted(self.shown_users[order], np.arange(self.n_users + 1))
        return indptr.astype(np.int64), self.shown_items[order].astype(np.int64)

    def subset(self, mask: np.ndarray) -> TrainData:
        """The positives in `mask` (nnz,), with every shown negative kept."""
        return TrainData(
            self.n_users,
            self.n_items,
            self.users[mask],
            self.items[mask],
            self.ratings[mask],
            self.timestamps[mask],
            self.item_emb,
            self.encode_profiles,
            self.positive_threshold,
            None if self.weights is None else self.weights[mask],
            self.shown_users,
            self.shown_items,
        )


class Recommender(ABC):
    """fit(data) -> self; score(users) -> (U, n_items); recommend(users, k) -> (U, k) items."""

    name: str = "base"

    def __init__(self) -> None:
        self.seen_: list[np.ndarray] | None = None

    @abstractmethod
    def fit(self, data: TrainData) -> Recommender: ...

    @abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """(U,) user indices -> (U, n_items) float32 scores, higher is better."""

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
    ) -> np.ndarray:
        """(U,) users -> (U, k) item indices best first (-1 pads when fewer candidates remain)."""
        from rec_models.evaluation.metrics import topk_from_scores

        exclude = (
            [self.seen_[u] for u in users] if exclude_seen and self.seen_ is not None else None
        )
        return topk_from_scores(self.score(users), k, exclude=exclude, candidates=candidates)

    @abstractmethod
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON config, named arrays) that fully describe the fitted model."""

    @abstractmethod
    def load_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None: ...

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config, arrays = self.state()
        if self.seen_ is not None:
            arrays["seen_indptr"] = np.cumsum([0] + [len(s) for s in self.seen_]).astype(np.int64)
            arrays["seen_items"] = np.concatenate(self.seen_).astype(np.int64)
        config = {"model": self.name, **config}
        (path / "config.json").write_text(json.dumps(config, indent=2))
        save_file(
            {k: np.ascontiguousarray(v) for k, v in arrays.items()}, path / "weights.safetensors"
        )

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        from safetensors.numpy import load_file

        from rec_models.models import get_model

        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        model = get_model(config["model"]).__new__(get_model(config["model"]))
        Recommender.__init__(model)
        arrays = load_file(path / "weights.safetensors")
        if "seen_indptr" in arrays:
            ptr, items = arrays.pop("seen_indptr"), arrays.pop("seen_items")
            model.seen_ = [items[ptr[u] : ptr[u + 1]] for u in range(len(ptr) - 1)]
        model.load_state(config, arrays)
        return model


def check_finite(name: str, *arrays: Any) -> None:
    for a in arrays:
        if not np.all(np.isfinite(np.asarray(a))):
            raise DivergedError(f"{name}: training diverged (NaN/inf parameters); lower the lr")
