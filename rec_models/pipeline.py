"""Shared plumbing of train and export: the dataset in index space, texts and their embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rec_models.config import TrainConfig
from rec_models.data import load_dataset
from rec_models.data.events import positive_mask, rows_of
from rec_models.data.schema import Dataset, validate_dataset
from rec_models.models.base import ProfileEncoder, TrainData
from rec_models.text.profiles import ItemInfo, Profile, item_text, profile_text


def _opt(value: object) -> object | None:
    return (
        None
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA
        else value
    )


@dataclass
class Context:
    """The dataset mapped to contiguous indices, with item infos and texts."""

    cfg: TrainConfig
    dataset: Dataset
    rows: str  # "impressions" or "interactions" (rec_models/data/events.py)
    user_ids: np.ndarray  # (n_users,) external ids, index = position
    item_ids: np.ndarray  # (n_items,)
    items: dict[int, ItemInfo]  # by item index
    demographics: list[Profile]  # by user index, history empty
    item_texts: list[str]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def index(self, interactions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        users = np.searchsorted(self.user_ids, interactions["user_id"].to_numpy())
        items = np.searchsorted(self.item_ids, interactions["item_id"].to_numpy())
        return users.astype(np.int64), items.astype(np.int64)

    def liked(self, ratings: np.ndarray) -> np.ndarray:
        """(n,) bool over positive rows: the ones a profile quotes as liked. Every click of an
        impression log; the ratings >= positive_threshold of an "interactions" dataset."""
        if self.rows == "interactions":
            return ratings >= self.cfg.data.positive_threshold
        return np.ones(len(ratings), dtype=bool)

    def profiles(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, timestamps: np.ndarray
    ) -> list[Profile]:
        """Each user's profile: demographics + liked items (of the positive rows given), oldest
        first."""
        keep = self.liked(ratings)
        order = np.lexsort((timestamps[keep], users[keep]))
        pu, pi = users[keep][order], items[keep][order]
        bounds = np.searchsorted(pu, np.arange(self.n_users + 1))
        out = []
        for u, demo in enumerate(self.demographics):
            hist = pi[bounds[u] : bounds[u + 1]].tolist()
            out.append(Profile(demo.age, demo.gender, demo.occupation, hist, demo.text))
        return out


def build_context(cfg: TrainConfig, dataset: Dataset | None = None) -> Context:
    """The configured dataset (or `dataset`, validated: a frame without click flags is a log of
    clicks) in index space."""
    ds = validate_dataset(dataset) if dataset is not None else load_dataset(cfg.data)
    user_ids = np.sort(ds.users["user_id"].to_numpy().astype(np.int64))
    item_ids = np.sort(ds.items["item_id"].to_numpy().astype(np.int64))
    items_df = ds.items.set_index("item_id").loc[item_ids]
    items: dict[int, ItemInfo] = {}
    for idx, (_, row) in enumerate(items_df.iterrows()):
        genres = str(row["genres"]).split("|") if _opt(row.get("genres")) else []
        year = _opt(row.get("year"))
        items[idx] = ItemInfo(
            str(row["title"]),
            int(year) if year is not None else None,
            genres,
            _opt(row.get("text")),
        )  # type: ignore[arg-type]
    users_df = ds.users.set_index("user_id").loc[user_ids]
    demographics = []
    for _, row in users_df.iterrows():
        age = _opt(row.get("age"))
        demographics.append(
            Profile(
                age=int(age) if age is not None else None,  # type: ignore[arg-type]
                gender=_opt(row.get("gender")),  # type: ignore[arg-type]
                occupation=_opt(row.get("occupation")),  # type: ignore[arg-type]
                text=_opt(row.get("text")),  # type: ignore[arg-type]
            )
        )
    texts = [item_text(items[i]) for i in range(len(item_ids))]
    return Context(cfg, ds, rows_of(cfg.data), user_ids, item_ids, items, demographics, texts)


class Embedder:
    """Item and profile embeddings through one encode function (torch teacher or ONNX variant)."""

    def __init__(self, ctx: Context, encode, count_tokens=None, max_tokens: int = 128) -> None:
        self.ctx, self.encode = ctx, encode
        self.count_tokens, self.max_tokens = count_tokens, max_tokens
        self._item_emb: np.ndarray | None = None

    def item_emb(self) -> np.ndarray:
        if self._item_emb is None:
            self._item_emb = self.encode(self.ctx.item_texts)
        return self._item_emb

    def profile_texts(self, users, items, ratings, timestamps) -> list[str]:
        return [
            profile_text(p, self.ctx.items, self.count_tokens, self.max_tokens)
            for p in self.ctx.profiles(users, items, ratings, timestamps)
        ]

    def profile_encoder(self) -> ProfileEncoder:
        return lambda u, i, r, t: self.encode(self.profile_texts(u, i, r, t))

    def train_data(self, interactions: pd.DataFrame) -> TrainData:
        """The positives (clicks) to fit on, their weights (a conversion counts
        data.conversion_weight clicks) and the shown-but-not-clicked impressions."""
        users, items = self.ctx.index(interactions)
        pos = positive_mask(interactions)
        converted = interactions["conversion"].to_numpy(bool)[pos]
        weights = None
        if converted.any() and self.ctx.cfg.data.conversion_weight != 1.0:
            weights = np.where(converted, self.ctx.cfg.data.conversion_weight, 1.0)
        shown = ~pos
        return TrainData(
            self.ctx.n_users,
            self.ctx.n_items,
            users[pos],
            items[pos],
            interactions["rating"].to_numpy(np.float32)[pos],
            interactions["timestamp"].to_numpy(np.int64)[pos],
            self.item_emb(),
            self.profile_encoder(),
            self.ctx.cfg.data.positive_threshold,
            weights=None if weights is None else weights.astype(np.float32),
            shown_users=users[shown] if shown.any() else None,
            shown_items=items[shown] if shown.any() else None,
        )


def finetune_pairs(
    emb: Embedder, interactions: pd.DataFrame, seed: int
) -> tuple[list[str], list[np.ndarray]]:
    """Inputs of the encoder fine-tuning: every user's positives split in two at random, the
    profile text written from one half (with the demographics) and the other half its targets."""
    ctx = emb.ctx
    interactions = interactions[positive_mask(interactions)]
    users, items = ctx.index(interactions)
    ratings = interactions["rating"].to_numpy(np.float32)
    stamps = interactions["timestamp"].to_numpy(np.int64)
    held = np.random.default_rng(seed).random(len(users)) < 0.5
    texts = emb.profile_texts(users[~held], items[~held], ratings[~held], stamps[~held])
    target = held & ctx.liked(ratings)
    tu, ti = users[target], items[target]
    order = np.argsort(tu, kind="stable")
    bounds = np.searchsorted(tu[order], np.arange(ctx.n_users + 1))
    return texts, [ti[order][bounds[u] : bounds[u + 1]] for u in range(ctx.n_users)]


def torch_embedder(ctx: Context, model_path: str | Path | None = None) -> Embedder:
    """The PyTorch encoder of `model_path` (default: the configured one) as an Embedder."""
    from rec_models.text.encoder import TextEncoder

    ec = ctx.cfg.encoder
    path = model_path or ec.model_path or None
    enc = TextEncoder(path, ec.max_length, ec.batch_size, ec.cache_dir)
    return Embedder(
        ctx, lambda texts: enc.encode(texts, desc="encoding texts"), enc.count_tokens, ec.max_length
    )


def artifacts_path(cfg: TrainConfig) -> Path:
    return Path(cfg.artifacts_dir)
