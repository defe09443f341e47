"""The simulations' click model remembers clicks: a clicked item is consumed.

The walkthrough's retrained version lost its A/B test to the stale one because the simulated
users clicked the same items again at the same rate forever, while the service leaves a user's
clicked items out of the retrained version's answers (its history holds them now). These tests
fail on that memoryless model: an already-clicked item keeps its taste probability there, and a
policy that re-shows the clicked top-10 does as well as one that moves on to the next-best items
(better, where the next-best are worse, as with a real model's ranking).
"""

from __future__ import annotations

import numpy as np
import pytest
from subsets import movielens_subset

from benchmarks.simulate_clicks import BASE, TasteClicks
from rec_models.config import load_config
from rec_models.pipeline import build_context

K = 10


@pytest.fixture(scope="module")
def clicks() -> TasteClicks:
    cfg = load_config(None)
    return TasteClicks(build_context(cfg, movielens_subset(60, 200)))


def best_items(clicks: TasteClicks, user: int, exclude: set[int]) -> list[int]:
    """The K items of highest taste probability for a user who clicked none of them."""
    p = clicks.taste_p(user, clicks.item_ids)
    return [int(clicks.item_ids[j]) for j in np.argsort(-p, kind="stable")
            if int(clicks.item_ids[j]) not in exclude][:K]  # fmt: skip


class AlwaysClick:
    """An rng whose every draw clicks (and converts)."""

    def random(self, n: int) -> np.ndarray:
        return np.zeros(n)


def test_a_clicked_item_drops_to_the_base_rate_and_only_for_that_user(clicks: TasteClicks):
    user, other = int(clicks.user_ids[0]), int(clicks.user_ids[1])
    items = best_items(clicks, user, set())
    before = clicks.p_click(user, items)
    assert (before > BASE).all()
    clicks.draw(user, items[:3], AlwaysClick())
    after = clicks.p_click(user, items)
    assert np.allclose(after[:3], BASE)
    assert np.array_equal(after[3:], before[3:])
    assert np.array_equal(clicks.p_click(other, items), clicks.taste_p(other, items))


def test_moving_on_from_clicked_items_beats_re_showing_them(clicks: TasteClicks):
    # stale: the same top-10 every time (a version trained before the clicks); fresh: the
    # top-10 of the items the user has not clicked (what the service shows once a version's
    # history holds the clicks). Same users, same rounds, one population each.
    rounds, users = 4, [int(u) for u in clicks.user_ids]
    ctr = {}
    for policy in ("stale", "fresh"):
        clicks.clicked.clear()
        rng = np.random.default_rng(0)
        logged: dict[int, set[int]] = {u: set() for u in users}  # the event log's clicks
        shown = n_clicks = 0
        for _ in range(rounds):
            for user in users:
                items = best_items(clicks, user, logged[user] if policy == "fresh" else set())
                click = clicks.draw(user, items, rng)[0]
                logged[user].update(np.asarray(items)[click].tolist())
                n_clicks, shown = n_clicks + int(click.sum()), shown + len(items)
        ctr[policy] = n_clicks / shown
    assert ctr["fresh"] > ctr["stale"] + 0.02, ctr
