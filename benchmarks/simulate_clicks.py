"""The known click model of the simulations: who clicks what, from the dataset alone.

A user's taste for a genre is the share of their liked ratings in it, divided by their
favourite genre's share; an item is clicked with probability BASE + LIFT * t^POWER, t the
user's taste for the item's best genre (the cube keeps the favourite genre well above the
runners-up). A click converts with probability CVR. The tastes come from the dataset's liked
ratings (what `make export`'s first version was trained on), never from a model version, so
the click model stays the same when a retrained version is published: a better model can only
show better items, not change what users like.

A clicked item is consumed: the user remembers it, and clicks it again only at BASE, the rate
of an item of no taste (a film already opened, an ad already followed). Without that memory a
simulated user clicks the same top-10 again at the same rate forever, which rewards a model for
re-showing what was clicked; but the service leaves a user's clicked items out of every answer
(the history exclusion), so a version retrained on the clicks can no longer show them, and the
stale version won the A/B test by re-showing them (README, "Feedback loop"). The memory lives in
one TasteClicks object: one simulated population, across a walkthrough's phases.

Used by benchmarks/simulate_feedback.py (a log written straight into the SQLiteSink) and
benchmarks/simulate_traffic.py (impressions and clicks through the running service).
"""

from __future__ import annotations

import numpy as np

from rec_models.data.events import positive_mask

BASE, LIFT, POWER, CVR = 0.02, 0.5, 3, 0.1


class TasteClicks:
    """Click and conversion draws of (user id, item ids) under the genre-taste model, with
    each user's memory of what they clicked."""

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
        self.clicked: dict[int, set[int]] = {}  # user id -> item ids clicked in the simulation

    def taste_p(self, user_id: int, item_ids: list[int] | np.ndarray) -> np.ndarray:
        """(n,) click probability of each item for a user who has clicked none of them."""
        u = int(np.searchsorted(self.user_ids, user_id))
        rows = np.searchsorted(self.item_ids, np.asarray(item_ids, np.int64))
        best = (self.taste[u][None, :] * self.member[rows]).max(axis=1, initial=0.0)
        return BASE + LIFT * best**POWER

    def p_click(self, user_id: int, item_ids: list[int] | np.ndarray) -> np.ndarray:
        """(n,) click probability of each item for the user now (ids as the service answers):
        the taste's, or BASE for an item the user already clicked."""
        seen = self.clicked.get(int(user_id), set())
        again = np.array([int(i) in seen for i in item_ids], bool)
        return np.where(again, BASE, self.taste_p(user_id, item_ids))

    def draw(
        self, user_id: int, item_ids: list[int] | np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(clicked, converted) boolean masks over `item_ids`; a conversion implies a click.
        The clicked items join the user's memory."""
        click = rng.random(len(item_ids)) < self.p_click(user_id, item_ids)
        self.clicked.setdefault(int(user_id), set()).update(
            int(i) for i in np.asarray(item_ids)[click]
        )
        return click, click & (rng.random(len(item_ids)) < CVR)
