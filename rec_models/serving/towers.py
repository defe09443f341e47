"""ONNX Runtime sessions of the scorer bundle's user tower and scorer, and the cold-user fold-in.

user_tower.onnx: profile_emb (B, d), history_emb (B, L, d), history_mask (B, L), user_factors (B, f)
-> user_vector (B, D). scorer.onnx: the same four + item_emb (C, d), item_factors (C, f) -> scores
(B, C). The service ranks with user_vector . item_vectors (the same number, precomputed items);
scorer.onnx checks that identity at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def session_options(threads: int) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Many request threads share the session: idle intra-op threads must sleep, not spin.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def fold_in(factors: np.ndarray, reg: float) -> np.ndarray:
    """Ridge fold-in of a cold user: (Q_h^T Q_h + reg I)^-1 Q_h^T 1 over the history's item
    factors (n, f) -> (f,); zeros without history."""
    f = factors.shape[1]
    if len(factors) == 0:
        return np.zeros(f, dtype=np.float32)
    q = factors.astype(np.float64)
    p = np.linalg.solve(q.T @ q + reg * np.eye(f), q.sum(0))
    return p.astype(np.float32)


class Towers:
    """The user tower and scorer sessions, fed from the bundle's item arrays."""

    def __init__(
        self,
        folder: Path,
        item_emb: np.ndarray,
        item_factors: np.ndarray,
        max_history: int,
        providers: Sequence[str] | None = None,
        threads: int = 1,
    ) -> None:
        """`threads`: intra-op threads per run. One suits serving: a run is one user's small
        matrix products, and concurrency comes from the requests running side by side."""
        import onnxruntime as ort

        providers = list(providers or ["CPUExecutionProvider"])
        opts = session_options(threads)
        self.user_tower = ort.InferenceSession(
            str(folder / "user_tower.onnx"), opts, providers=providers
        )
        self.scorer = ort.InferenceSession(str(folder / "scorer.onnx"), opts, providers=providers)
        self.providers = self.user_tower.get_providers()
        self.item_emb = item_emb  # (N, d)
        self.item_factors = item_factors  # (N, f)
        self.max_history = max_history

    def _feeds(
        self, profile_emb: np.ndarray, histories: Sequence[np.ndarray], user_factors: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Histories are item rows, oldest first; the last `max_history` are kept, left-padded
        with masked zero rows (an empty history is one masked row)."""
        b, d = len(histories), self.item_emb.shape[1]
        cut = [np.asarray(h, dtype=np.int64)[-self.max_history :] for h in histories]
        length = max(1, *(len(h) for h in cut)) if cut else 1
        history_emb = np.zeros((b, length, d), dtype=np.float32)  # (B, L, d)
        history_mask = np.zeros((b, length), dtype=np.float32)  # (B, L)
        for i, h in enumerate(cut):
            if len(h):
                history_emb[i, length - len(h) :] = self.item_emb[h]
                history_mask[i, length - len(h) :] = 1.0
        return {
            "profile_emb": np.ascontiguousarray(profile_emb, dtype=np.float32),
            "history_emb": history_emb,
            "history_mask": history_mask,
            "user_factors": np.ascontiguousarray(user_factors, dtype=np.float32),
        }

    def user_vectors(
        self, profile_emb: np.ndarray, histories: Sequence[np.ndarray], user_factors: np.ndarray
    ) -> np.ndarray:
        """(B, d), B histories, (B, f) -> (B, D) user vectors."""
        feeds = self._feeds(profile_emb, histories, user_factors)
        return self.user_tower.run(["user_vector"], feeds)[0]

    def scores(
        self,
        profile_emb: np.ndarray,
        histories: Sequence[np.ndarray],
        user_factors: np.ndarray,
        item_rows: np.ndarray,
    ) -> np.ndarray:
        """scorer.onnx over the items `item_rows` -> (B, C) uncalibrated hybrid scores."""
        feeds = self._feeds(profile_emb, histories, user_factors)
        feeds["item_emb"] = np.ascontiguousarray(self.item_emb[item_rows], dtype=np.float32)
        feeds["item_factors"] = np.ascontiguousarray(self.item_factors[item_rows], dtype=np.float32)
        return self.scorer.run(["scores"], feeds)[0]
