"""A feedback log as the service would write it, from a known click model, to retrain on.

    python -m benchmarks.simulate_feedback [--artifacts artifacts] [--responses 3]
        [--explore 0.3] [--seed 0] [--events <artifacts>/events/events.sqlite]

Serves every known user of the current scorer version (the model store's newest) `responses`
responses of 10 items, through that version's own bundle (bundle.py): the top-ranked items the
user has not clicked yet, each slot replaced with probability `explore` by a random unseen item
(so the log also holds feedback on items the model would not have shown). Impressions and clicks
go through the real SQLiteSink, with the version's name as model_version.

The click model is benchmarks/simulate_clicks.py's (a user's taste for an item's best genre,
from the dataset's liked ratings; 10% of clicks convert; an item the user clicked in an earlier
response is clicked again only at the base rate). Responses are one second apart and
end now.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.simulate_clicks import TasteClicks
from rec_models.config import load_config
from rec_models.events import EventKind, Feedback, Impressions, SQLiteSink
from rec_models.pipeline import build_context, torch_embedder
from rec_models.retrain.bundle import OfflineBundle
from rec_models.versions import resolve_version

K = 10


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
    clicks_of = TasteClicks(ctx)
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
                user_id = int(bundle.arrays["user_ids"][u])
                imp = Impressions.ranked(
                    rid,
                    [(int(item_ids[i]), float(scores[u, i]), 0.0) for i in shown],
                    model_version=version.version,
                    variant="A",
                    encoder_variant="int8",
                    timestamp=now,
                    user_id=user_id,
                )
                assert sink.log_impressions(imp), "impressions dropped: the queue is too small"
                click, convert = clicks_of.draw(user_id, item_ids[shown], rng)
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
