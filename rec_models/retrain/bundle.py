"""A store version's scorer bundle, scored offline through its own user tower.

Follows the README's scorer-bundle contract (arrays.npz, catalog.json, config.json,
user_tower.onnx), so it scores any version the store holds, whatever code trained it: the
user vector comes from user_tower.onnx fed with the profile text's embedding, the user's clicked
history (oldest first, the last `max_history`, left-padded) and MF factors; an item's score is
that vector dotted with the bundle's item vector.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

Encode = Callable[[list[str]], np.ndarray]


class OfflineBundle:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        with np.load(self.folder / "arrays.npz", allow_pickle=False) as npz:
            self.arrays = {k: npz[k] for k in npz.files}
        self.config = json.loads((self.folder / "config.json").read_text())
        self.catalog = json.loads((self.folder / "catalog.json").read_text())
        self.user_row = {int(u): j for j, u in enumerate(self.arrays["user_ids"])}
        self.item_row = {int(i): j for j, i in enumerate(self.arrays["item_ids"])}

    @property
    def item_vectors(self) -> np.ndarray:
        return self.arrays["item_vectors"]  # (N, D)

    def history(self, user_row: int) -> np.ndarray:
        """The user's clicked item ids, oldest first."""
        ptr = self.arrays["history_indptr"]
        return self.arrays["history_items"][ptr[user_row] : ptr[user_row + 1]]

    def user_vectors(self, user_rows: list[int], encode: Encode) -> np.ndarray:
        """(B, D) user vectors of the bundle's users at `user_rows`."""
        import onnxruntime as ort

        texts = [self.catalog["users"][u]["profile_text"] for u in user_rows]
        profile = np.asarray(encode(texts), np.float32)  # (B, d)
        hist_len = int(self.config["max_history"])
        item_emb = self.arrays["item_emb"]
        history = np.zeros((len(user_rows), hist_len, item_emb.shape[1]), np.float32)  # (B, L, d)
        mask = np.zeros((len(user_rows), hist_len), np.float32)  # (B, L)
        for b, u in enumerate(user_rows):
            rows = [self.item_row[int(i)] for i in self.history(u)][-hist_len:]
            if rows:
                history[b, hist_len - len(rows) :] = item_emb[rows]
                mask[b, hist_len - len(rows) :] = 1.0
        session = ort.InferenceSession(str(self.folder / "user_tower.onnx"))
        feeds = {
            "profile_emb": profile,
            "history_emb": history,
            "history_mask": mask,
            "user_factors": self.arrays["user_factors"][user_rows].astype(np.float32),
        }
        return session.run(["user_vector"], feeds)[0]

    def pair_scores(
        self, user_ids: np.ndarray, item_ids: np.ndarray, encode: Encode
    ) -> tuple[np.ndarray, np.ndarray]:
        """(known mask, scores of the known (user, item) pairs)."""
        known = np.array(
            [
                int(u) in self.user_row and int(i) in self.item_row
                for u, i in zip(user_ids, item_ids, strict=True)
            ],
            bool,
        )
        rows = sorted({self.user_row[int(u)] for u in user_ids[known]})
        if not rows:
            return known, np.zeros(0)
        vectors = self.user_vectors(rows, encode)
        at = {u: b for b, u in enumerate(rows)}
        b_rows = np.array([at[self.user_row[int(u)]] for u in user_ids[known]], np.int64)
        i_rows = np.array([self.item_row[int(i)] for i in item_ids[known]], np.int64)
        scores = np.einsum("nd,nd->n", vectors[b_rows], self.item_vectors[i_rows])
        return known, scores.astype(np.float64)
