"""A feedback log as the service would write it, from a known click model, to retrain on.

    python -m benchmarks.simulate_feedback [--artifacts artifacts] [--responses 3]
        [--explore 0.3] [--seed 0] [--events <artifacts>/events/events.sqlite]

Serves every known user of the current scorer version (the model store's newest) `responses`
responses of 10 items, through that version's own bundle (bundle.py): the top-ranked items the
user has not clicked yet, each slot replaced with probability `explore` by a random unseen item
(so the log also holds feedback on items the model would not have shown). Impressions and clicks
go through the real SQLiteSink, with the version's name as model_version.

The click model (known, so a retrained model has something true to learn): a user's taste for
a genre is the share of their liked ratings in it, divided by their favourite genre's share;
an item is clicked with probability 0.02 + 0.5 t^3, t the user's taste for the item's best genre
(the cube keeps the favourite genre well above the runners-up). Clicks convert with probability
0.1. Responses are one second apart and end now.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rec_models.config import load_config
from rec_models.events import EventKind, Feedback, Impressions, SQLiteSink
from rec_models.pipeline import build_context, torch_embedder
from rec_models.retrain.bundle import OfflineBundle
from rec_models.versions import resolve_version

K = 10
BASE, LIFT, POWER, CVR = 0.02, 0.5, 3, 0.1


def tastes(ctx, bundle: OfflineBundle) -> tuple[np.ndarray, np.ndarray]:
    """(users x genres) taste in [0, 1] of the bundle's users, (items x genres) membership."""
    genres = sorted({g for info in ctx.items.values() for g in info.genres})
    g_of = {g: j for j, g in enumerate(genres)}
    member = np.zeros((len(bundle.item_row), len(genres)), bool)
    for idx, info in ctx.items.items():
        row = bundle.item_row.get(int(ctx.item_ids[idx]))
        if row is not None:
            member[row, [g_of[g] for g in info.genres]] = True
    ptr, liked = bundle.arrays["positive_indptr"], bundle.arrays["positive_items"]
    taste = np.zeros((len(bundle.user_row), len(genres)))
    for u in range(len(bundle.user_row)):
        rows = [bundle.item_row[int(i)] for i in liked[ptr[u] : ptr[u + 1]]]
        if rows:
            share = member[rows].sum(0)
            taste[u] = share / max(share.max(), 1)
    return taste, member


def slate(bundle: OfflineBundle, user: int, scores: np.ndarray, explore: float, rng) -> list[int]:
    """K item rows: the best-scored ones the user has not clicked, each slot replaced with
    probability `explore` by a random other unclicked item."""
    seen = {bundle.item_row[int(i)] for i in bundle.history(user)}
    order = [int(i) for i in np.argsort(-scores) if int(i) not in seen]
    shown, rest = order[:K], np.array(order[K:])
    slots = np.flatnonzero(rng.random(K) < explore)
    for slot, pick in zip(slots, rng.choice(rest, len(slots), replace=False), strict=True):
        shown[slot] = int(pick)
    return shown


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.simulate_feedback", description=__doc__)
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument("--events", help="default: <artifacts>/events/events.sqlite")
    p.add_argument("--responses", type=int, default=3, help="responses per known user")
    p.add_argument("--explore", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    artifacts = Path(args.artifacts)
    events = Path(args.events or artifacts / "events" / "events.sqlite")
    version = resolve_version("current")
    bundle = OfflineBundle(version.path)
    cfg = load_config(artifacts / "train_config.json")
    ctx = build_context(cfg)
    taste, member = tastes(ctx, bundle)
    rows = list(range(len(bundle.user_row)))
    vectors = bundle.user_vectors(rows, torch_embedder(ctx).encode)  # (U, D)
    scores = vectors @ bundle.item_vectors.T  # (U, N)
    item_ids = bundle.arrays["item_ids"]
    rng = np.random.default_rng(args.seed)
    n = len(rows) * args.responses
    now = time.time() - n - 5
    shown_n = clicks = conversions = 0
    t0 = time.perf_counter()
    with SQLiteSink(events) as sink:
        for r in range(args.responses):
            for u in rows:
                shown = slate(bundle, u, scores[u], args.explore, rng)
                now += 1.0
                rid = f"sim-{args.seed}-{r}-{u}"
                imp = Impressions.ranked(
                    rid,
                    [(int(item_ids[i]), float(scores[u, i]), 0.0) for i in shown],
                    model_version=version.version,
                    variant="A",
                    encoder_variant="int8",
                    timestamp=now,
                    user_id=int(bundle.arrays["user_ids"][u]),
                )
                assert sink.log_impressions(imp), "impressions dropped: the queue is too small"
                best = np.array([taste[u, member[i]].max(initial=0.0) for i in shown])
                click = rng.random(K) < BASE + LIFT * best**POWER
                convert = click & (rng.random(K) < CVR)
                fb = [Feedback(rid, int(item_ids[shown[j]]), EventKind.CLICK, now + 0.5)
                      for j in np.flatnonzero(click)]  # fmt: skip
                fb += [Feedback(rid, int(item_ids[shown[j]]), EventKind.CONVERSION, now + 0.8)
                       for j in np.flatnonzero(convert)]  # fmt: skip
                if fb:
                    sink.submit_feedback(fb).result(timeout=60)
                shown_n, clicks, conversions = (
                    shown_n + K,
                    clicks + click.sum(),
                    conversions + convert.sum(),
                )
        sink.flush(timeout=60)
    print(
        f"{events}: {shown_n} impressions served by {version.tag}, {clicks} clicks "
        f"({clicks / shown_n:.1%}), {conversions} conversions, in {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
