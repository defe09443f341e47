"""The known click model of the simulations: who clicks what, from the dataset alone.

A user's taste for a genre is the share of their liked ratings in it, divided by their
favourite genre's share; an item is clicked with probability BASE + LIFT * t^POWER, t the
user's taste for the item's best genre (the cube keeps the favourite genre well above the
runners-up). A click converts with probability CVR. The tastes come from the dataset's liked
ratings (what `make export`'s first version was trained on), never from a model version, so
the click model stays the same when a retrained version is published: a better model can only
show better items, not change what users like.

Used by benchmarks/simulate_feedback.py (a log written straight into the SQLiteSink) and
benchmarks/simulate_traffic.py (impressions and clicks through the running service).
"""

from __future__ import annotations

import numpy as np

from rec_models.data.events import positive_mask

BASE, LIFT, POWER, CVR = 0.02, 0.5, 3, 0.1


class TasteClicks:
    """Click and conversion draws of (user id, item ids) under the genre-taste model."""

    def __init__(self, ctx) -> None:
        genres = sorted({g for info in ctx.items.values() for g in info.genres})
        g_of = {g: j for j, g in enumerate(genres)}
        self.user_ids, self.item_ids = ctx.user_ids, ctx.item_ids
        self.member = np.zeros((len(ctx.item_ids), len(genres)), bool)  # (items, genres)
        for idx, info in ctx.items.items():
            self.member[idx, [g_of[g] for g in info.genres]] = True
        inter = ctx.dataset.interactions
        inter = inter[positive_mask(inter)]
        liked = ctx.liked(inter["rating"].to_numpy())
        users, items = ctx.index(inter[liked])
        share = np.zeros((len(ctx.user_ids), len(genres)))  # (users, genres) liked counts
        np.add.at(share, users, self.member[items])
        self.taste = share / np.maximum(share.max(axis=1, keepdims=True), 1)

    def p_click(self, user_id: int, item_ids: list[int] | np.ndarray) -> np.ndarray:
        """(n,) click probability of each item for the user (ids as the service answers)."""
        u = int(np.searchsorted(self.user_ids, user_id))
        rows = np.searchsorted(self.item_ids, np.asarray(item_ids, np.int64))
        best = (self.taste[u][None, :] * self.member[rows]).max(axis=1, initial=0.0)
        return BASE + LIFT * best**POWER

    def draw(
        self, user_id: int, item_ids: list[int] | np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(clicked, converted) boolean masks over `item_ids`; a conversion implies a click."""
        click = rng.random(len(item_ids)) < self.p_click(user_id, item_ids)
        return click, click & (rng.random(len(item_ids)) < CVR)
