"""Encoder fine-tuning: its pairs never leak a target into its profile, and training on real
MovieLens profiles with the real MiniLM makes held-out positives easier to retrieve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rec_models.config import DataConfig, EncoderConfig, TrainConfig
from rec_models.data import load_dataset
from rec_models.data.schema import Dataset
from rec_models.pipeline import Embedder, build_context, finetune_pairs
from rec_models.text.encoder import TextEncoder
from rec_models.text.finetune import FinetuneError, finetune_encoder

N_USERS, N_ITEMS = 96, 200


@pytest.fixture(scope="module")
def subset() -> Embedder:
    full = load_dataset(DataConfig())  # data/ml-100k, fetched by `make data`
    users = full.users.iloc[:N_USERS]
    popular = full.interactions["item_id"].value_counts().index[:N_ITEMS]
    inter = full.interactions[
        full.interactions["user_id"].isin(users["user_id"])
        & full.interactions["item_id"].isin(popular)
    ]
    items = full.items[full.items["item_id"].isin(popular)]
    ctx = build_context(TrainConfig(), Dataset("subset", users, items, inter))
    return Embedder(ctx, encode=lambda texts: np.zeros((len(texts), 4), np.float32))


def test_pairs_hold_targets_out_of_the_profile(subset: Embedder, monkeypatch):
    seen: dict[str, np.ndarray] = {}

    def spy(users, items, ratings, timestamps):
        seen["users"], seen["items"] = users, items
        return ["profile"] * subset.ctx.n_users

    monkeypatch.setattr(subset, "profile_texts", spy)
    inter = subset.ctx.dataset.interactions
    texts, targets = finetune_pairs(subset, inter, seed=3)
    users, items = subset.ctx.index(inter)
    positive = inter["rating"].to_numpy() >= 4
    assert len(texts) == len(targets) == subset.ctx.n_users
    for u in range(subset.ctx.n_users):
        in_profile = set(seen["items"][seen["users"] == u].tolist())
        liked = set(items[(users == u) & positive].tolist())
        assert set(targets[u].tolist()) <= liked
        assert not in_profile & set(targets[u].tolist()), f"user {u}: target in its profile"
        assert liked <= in_profile | set(targets[u].tolist())  # every positive is used once
    assert sum(len(t) for t in targets) > 0.3 * positive.sum()  # about half held out


def _mrr(enc: TextEncoder, profiles: list[str], items: list[str], targets: list) -> float:
    p, q = enc.encode(profiles, progress=False), enc.encode(items, progress=False)
    scores = p @ q.T  # (U, I)
    rr = []
    for u, t in enumerate(targets):
        for i in t:
            rr.append(1.0 / (1 + int((scores[u] > scores[u, i]).sum())))
    return float(np.mean(rr))


def test_finetuning_brings_held_out_positives_closer(subset: Embedder, tmp_path):
    ctx = subset.ctx
    texts, targets = finetune_pairs(subset, ctx.dataset.interactions, seed=3)
    cfg = EncoderConfig(finetune=True, finetune_epochs=8, finetune_lr=2e-4, finetune_batch_size=32)
    summary = finetune_encoder(texts, ctx.item_texts, targets, tmp_path / "ft", cfg, seed=0)
    assert summary["users"] == sum(1 for t in targets if len(t))
    assert summary["loss_last_epoch"] < summary["loss_first_epoch"]
    base = TextEncoder(cache_dir=None)
    tuned = TextEncoder(tmp_path / "ft", cache_dir=None)  # a complete HF folder
    assert tuned.fingerprint != base.fingerprint
    before = _mrr(base, texts, ctx.item_texts, targets)
    after = _mrr(tuned, texts, ctx.item_texts, targets)
    assert after > before * 1.2, (before, after)


def test_bad_settings_name_the_field(subset: Embedder, tmp_path):
    ctx = subset.ctx
    texts, targets = finetune_pairs(subset, ctx.dataset.interactions, seed=3)
    with pytest.raises(FinetuneError, match=r"encoder\.finetune_layers"):
        finetune_encoder(
            texts, ctx.item_texts, targets, tmp_path / "a", EncoderConfig(finetune_layers=7)
        )
    empty = [np.array([], dtype=np.int64)] * len(texts)
    with pytest.raises(FinetuneError, match=r"encoder\.finetune:"):
        finetune_encoder(texts, ctx.item_texts, empty, tmp_path / "b", EncoderConfig())
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_pairs_from_a_log_without_positives_are_empty(subset: Embedder):
    inter = subset.ctx.dataset.interactions.copy()
    inter["rating"] = 1.0
    _, targets = finetune_pairs(subset, pd.DataFrame(inter), seed=0)
    assert all(len(t) == 0 for t in targets)
