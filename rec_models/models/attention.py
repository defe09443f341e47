"""Attention recommender: a text two-tower model with bilinear attention over the user's history.

User tower: q = f_p(profile_emb); h_j = f_i(history_emb_j); a = softmax_j(q^T W h_j / sqrt(dim));
u = normalize(g([q; sum_j a_j h_j])). Item tower: v = normalize(f_i(item_emb)).
Score = cos(u, v). Trained with a softmax over the training catalog on held-out interactions:
each user's training interactions are cut into folds; a fold's items are targets while the profile
text and the history come from the other folds, so the model never sees its target in its input.
On an impression log the softmax also sees what was shown: each of the user's shown-but-not-clicked
ads counts `shown_weight` times in the denominator (a logged negative, beside the catalog's), and
a positive's loss is weighted by its TrainData weight (a conversion above a click).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rec_models.config import AttentionConfig
from rec_models.models.attention_net import build_net
from rec_models.models.base import Recommender, TrainData, check_finite, training_threads


def recent_history(
    n_users: int, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, max_len: int
) -> np.ndarray:
    """(n_users, max_len) item indices, most recent last, left-padded with -1."""
    order = np.lexsort((timestamps, users))
    hist = np.full((n_users, max_len), -1, dtype=np.int64)
    bounds = np.searchsorted(users[order], np.arange(n_users + 1))
    for u in range(n_users):
        seq = items[order[bounds[u] : bounds[u + 1]]][-max_len:]
        if len(seq):
            hist[u, -len(seq) :] = seq
    return hist


def shown_bias(
    indptr: np.ndarray, shown: np.ndarray, users: np.ndarray, target: Any, n: int, value: float
) -> Any:
    """(B, N) torch tensor: `value` (log shown_weight) at each batch user's shown-but-not-clicked
    items, 0 elsewhere and at the target (an ad clicked once stays a positive there)."""
    import torch

    counts = indptr[users + 1] - indptr[users]  # (B,)
    rows = np.repeat(np.arange(len(users)), counts)
    cols = shown[np.concatenate([np.arange(indptr[u], indptr[u + 1]) for u in users])]
    bias = torch.zeros(len(users), n)
    bias[torch.as_tensor(rows), torch.as_tensor(cols)] = value
    bias[torch.arange(len(users)), target] = 0.0
    return bias


class AttentionRecommender(Recommender):
    name = "attention"

    def __init__(self, cfg: AttentionConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or AttentionConfig()
        if self.cfg.folds < 2:
            raise ValueError(f"attention.folds: {self.cfg.folds} < 2 (a fold needs the others)")
        self.net: Any = None
        self.item_emb = np.zeros((0, 0), dtype=np.float32)
        self.profile_emb = np.zeros((0, 0), dtype=np.float32)
        self.history = np.zeros((0, 0), dtype=np.int64)

    # -- training ---------------------------------------------------------------------------
    def _fold_inputs(self, data: TrainData, rng: np.random.Generator) -> list[tuple]:
        """Per fold: (targets mask, profile_emb (U, d), history (U, L)), built without targets."""
        fold_of = rng.integers(0, self.cfg.folds, size=len(data.users))
        out = []
        for f in range(self.cfg.folds):
            keep = fold_of != f
            prof = data.encode_profiles(
                data.users[keep], data.items[keep], data.ratings[keep], data.timestamps[keep]
            )
            hist = recent_history(
                data.n_users,
                data.users[keep],
                data.items[keep],
                data.timestamps[keep],
                self.cfg.max_history,
            )
            out.append((~keep, prof, hist))
        return out

    def fit(self, data: TrainData, progress: bool = True) -> AttentionRecommender:
        import torch

        if data.item_emb is None or data.encode_profiles is None:
            raise ValueError("attention: TrainData needs item_emb and encode_profiles")
        cfg = self.cfg
        rng = np.random.default_rng(cfg.seed)
        folds = self._fold_inputs(data, rng)
        threads = torch.get_num_threads()
        torch.set_num_threads(training_threads(cfg.threads))
        try:
            self._train(data, folds, rng, progress)
        finally:
            torch.set_num_threads(threads)
        self.item_emb = data.item_emb.astype(np.float32)
        self.set_users(
            data.encode_profiles(data.users, data.items, data.ratings, data.timestamps),
            recent_history(data.n_users, data.users, data.items, data.timestamps, cfg.max_history),
        )
        self.seen_ = data.seen()
        self.warm_ = data.item_counts() > 0
        return self

    def _train(
        self, data: TrainData, folds: list[tuple], rng: np.random.Generator, progress: bool
    ) -> None:
        import torch
        from tqdm.auto import tqdm

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        d_text = data.item_emb.shape[1]
        net = self._build(d_text, data.n_items)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        item_emb = torch.as_tensor(data.item_emb)
        item_emb_padded = torch.cat([item_emb, torch.zeros(1, d_text)])  # index -1 -> zero row
        known = torch.as_tensor(data.warm_items())  # clicked or shown in training
        shown_ptr, shown_items = data.shown_by_user()
        log_shown = float(np.log(cfg.shown_weight)) if len(shown_items) else 0.0
        weights = None if data.weights is None else torch.as_tensor(data.weights)
        target_ok = np.ones(len(data.users), bool)
        if cfg.positives_only:  # only liked rows are targets; inputs keep every positive
            target_ok = data.ratings >= data.positive_threshold
        examples = [(f, np.nonzero(m & target_ok)[0]) for f, (m, _, _) in enumerate(folds)]
        if not target_ok.any():
            raise ValueError(
                f"attention.positives_only: no training row is rated >= "
                f"{data.positive_threshold}, nothing to learn from"
            )
        # logQ-style popularity correction: the training logits pay beta * log(count), so the
        # softmax stops spending capacity on what popularity explains (scores at inference do not)
        log_pop = torch.as_tensor(np.log1p(data.item_counts()).astype(np.float32))
        warm = torch.as_tensor(data.item_counts() > 0)[:, None]
        fold_prof = [torch.as_tensor(p) for _, p, _ in folds]
        fold_hist = [torch.as_tensor(h) for _, _, h in folds]
        for _ in tqdm(range(cfg.epochs), desc="attention", disable=not progress, unit="epoch"):
            for f, rows in examples:
                perm = rng.permutation(rows)
                # a small log still gets min_batches steps per fold and epoch (MovieLens: 1024)
                size = min(cfg.batch_size, max(32, -(-len(rows) // cfg.min_batches)))
                for s in range(0, len(perm), size):
                    b = perm[s : s + size]
                    u = torch.as_tensor(data.users[b])
                    target = torch.as_tensor(data.items[b])
                    hist = fold_hist[f][u]  # (B, L)
                    # Project the catalog once and gather the history from it: the tower runs
                    # on N items per step instead of B * L history slots.
                    projected = net.item(item_emb_padded)  # (N + 1, dim), last row = padding
                    q = net.profile(fold_prof[f][u])  # (B, dim)
                    user = net.attend(q, projected[hist], (hist >= 0).float())
                    items = self._items(net, projected[:-1], warm)  # (N, dim)
                    logits = (user @ items.T) / cfg.temperature
                    if cfg.pop_correction:
                        logits = logits - cfg.pop_correction * log_pop
                    logits = logits.masked_fill(~known, -1e4)
                    if log_shown:  # logged negatives weigh shown_weight in the denominator
                        logits = logits + shown_bias(shown_ptr, shown_items, data.users[b],
                                                     target, data.n_items, log_shown)  # fmt: skip
                    if weights is None:
                        loss = torch.nn.functional.cross_entropy(logits, target)
                    else:
                        per = torch.nn.functional.cross_entropy(logits, target, reduction="none")
                        loss = (per * weights[b]).sum() / weights[b].sum()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            if not torch.isfinite(loss):
                check_finite("attention", loss.item())
        self.net = net.eval()

    def _build(self, d_text: int, n_items: int) -> Any:
        import torch

        c = self.cfg
        net = build_net(d_text, c.dim, c.tower, c.layers, c.heads, c.max_history, c.hidden)
        if c.item_ids:  # ID embeddings beside the text projection, zero for cold items
            net.ids = torch.nn.Parameter(torch.zeros(n_items, c.dim))
        return net

    @staticmethod
    def _items(net: Any, projected: Any, warm: Any) -> Any:
        """(N, dim) normalised item vectors from the projected texts (+ warm items' IDs)."""
        import torch

        if hasattr(net, "ids"):
            projected = projected + net.ids * warm
        return torch.nn.functional.normalize(projected, dim=-1)

    # -- inference --------------------------------------------------------------------------
    def set_users(self, profile_emb: np.ndarray, history: np.ndarray) -> None:
        """The users' inputs at inference: (U, d) profile embeddings and (U, L) histories."""
        self.profile_emb = profile_emb.astype(np.float32)
        self.history = history
        self._user_vec: np.ndarray | None = None

    def set_item_emb(self, item_emb: np.ndarray) -> None:
        """Swap in item text embeddings from another encoder (export quality checks)."""
        self.item_emb = item_emb.astype(np.float32)
        self._user_vec = None

    def item_vectors(self) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if not hasattr(self.net, "ids"):
                return self.net.item_tower(torch.as_tensor(self.item_emb)).numpy()  # (N, dim)
            warm = torch.as_tensor(self.warm_)[:, None]
            projected = self.net.item(torch.as_tensor(self.item_emb))
            return self._items(self.net, projected, warm).numpy()

    def user_vectors(self) -> np.ndarray:
        import torch

        if self._user_vec is None:
            padded = np.concatenate(
                [self.item_emb, np.zeros((1, self.item_emb.shape[1]), np.float32)]
            )
            with torch.inference_mode():
                h = torch.as_tensor(padded[self.history])  # (U, L, d)
                self._user_vec = self.net.user_tower(
                    torch.as_tensor(self.profile_emb), h, torch.as_tensor(self.history >= 0).float()
                ).numpy()
        return self._user_vec  # (U, dim)

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_vectors()[users] @ self.item_vectors().T

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"net.{k}": v.detach().numpy() for k, v in self.net.state_dict().items()}
        arrays |= {
            "item_emb": self.item_emb,
            "profile_emb": self.profile_emb,
            "history": self.history,
        }
        c = self.cfg
        cfg = {"dim": c.dim, "max_history": c.max_history, "folds": c.folds, "tower": c.tower,
               "layers": c.layers, "heads": c.heads, "item_ids": c.item_ids,
               "hidden": c.hidden}  # fmt: skip
        if c.item_ids:
            arrays["warm"] = self.warm_.astype(np.int8)
        return cfg, arrays

    def load_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        import torch

        keys = ("dim", "max_history", "folds", "tower", "layers", "heads", "item_ids", "hidden")
        self.cfg = AttentionConfig(**{k: config[k] for k in keys if k in config})
        self.item_emb = arrays["item_emb"]
        if "warm" in arrays:
            self.warm_ = arrays["warm"].astype(bool)
        self.net = self._build(self.item_emb.shape[1], len(self.item_emb))
        self.net.load_state_dict(
            {k[4:]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")}
        )
        self.net.eval()
        self.set_users(arrays["profile_emb"], arrays["history"])
