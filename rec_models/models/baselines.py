"""Reference points every run reports: random and popularity."""

from __future__ import annotations

from typing import Any

import numpy as np

from rec_models.models.base import Recommender, TrainData


class RandomRecommender(Recommender):
    name = "random"

    def __init__(self, seed: int = 42) -> None:
        super().__init__()
        self.seed = seed
        self.n_items = 0

    def fit(self, data: TrainData) -> RandomRecommender:
        self.n_items, self.seen_ = data.n_items, data.seen()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.random((len(users), self.n_items), dtype=np.float32)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"seed": self.seed, "n_items": self.n_items}, {}

    def load_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.seed, self.n_items = config["seed"], config["n_items"]


class PopularityRecommender(Recommender):
    name = "popularity"

    def __init__(self) -> None:
        super().__init__()
        self.counts = np.zeros(0, dtype=np.float32)

    def fit(self, data: TrainData) -> PopularityRecommender:
        self.counts = data.item_counts().astype(np.float32)
        self.seen_ = data.seen()
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), len(self.counts))).copy()

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"counts": self.counts}

    def load_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.counts = arrays["counts"]
