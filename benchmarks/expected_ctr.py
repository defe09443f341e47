"""What each model version's answers are worth under the known click model, offline.

    python -m benchmarks.expected_ctr --events artifacts/events/events.sqlite
        [--versions 1 current] [--config artifacts/train_config.json] [--replay 2900,3000]

For every known user, each version's top-10 as the service answers it (the version's scorer
bundle through its own user tower, the user's clicked history left out), and its expected CTR
under benchmarks/simulate_clicks.py's model: for users who remember nothing, and for users who
remember the clicks of the log at --events (a clicked item is clicked again only at the base
rate). Each version also with the log's clicked items left out of its answers, the exclusion a
version retrained on the log makes: the like-for-like comparison of what the versions rank.

--replay SWAP,AFTER draws the walkthrough's traffic after the retrain offline: SWAP responses
of random users all on the first version (the swap settling), then AFTER responses with the
users split 50/50, arm A on the first version and B on the second, clicks drawn with the log's
memory carried on; the CTR of each arm over the AFTER responses, per seed. What
`make walkthrough`'s A/B test should find, without a service.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from benchmarks.simulate_clicks import TasteClicks
from rec_models.config import load_config
from rec_models.events.reader import EventLogReader
from rec_models.pipeline import build_context, torch_embedder
from rec_models.retrain.bundle import OfflineBundle
from rec_models.versions import resolve_version

K = 10


def logged_clicks(path: Path) -> dict[int, set[int]]:
    """user id -> the item ids the log says the user clicked."""
    out: dict[int, set[int]] = {}
    with EventLogReader(path) as reader:
        for r in reader.labelled_impressions():
            if r.user_id is not None and (r.clicked or r.converted):
                out.setdefault(int(r.user_id), set()).add(int(r.item_id))
    return out


def top_k(bundle: OfflineBundle, encode, exclude: dict[int, set[int]]) -> dict[int, list[int]]:
    """user id -> the version's K best item ids, its own history and `exclude` left out."""
    rows = list(range(len(bundle.user_row)))
    scores = bundle.user_vectors(rows, encode) @ bundle.item_vectors.T  # (U, N)
    ids, users = bundle.arrays["item_ids"], bundle.arrays["user_ids"]
    out = {}
    for u in rows:
        user = int(users[u])
        left_out = {int(i) for i in bundle.history(u)} | exclude.get(user, set())
        order = (int(ids[j]) for j in np.argsort(-scores[u], kind="stable"))
        out[user] = [i for i in order if i not in left_out][:K]
    return out


def expected(clicks: TasteClicks, tops: dict[int, list[int]]) -> float:
    """Mean over users of the expected CTR of their top-K (p_click: with `clicks`' memory)."""
    return float(np.mean([clicks.p_click(u, items).mean() for u, items in tops.items()]))


def replay(clicks_of, memory, tops_a, tops_b, swap: int, after: int, seed: int):
    clicks = clicks_of()
    clicks.clicked = {u: set(s) for u, s in memory.items()}
    rng = np.random.default_rng(seed)
    users = np.array(sorted(tops_a))
    arm_b = {int(u): bool(b) for u, b in zip(users, rng.random(len(users)) < 0.5, strict=True)}
    shown, clicked = np.zeros(2), np.zeros(2)
    for r in range(swap + after):
        user = int(rng.choice(users))
        b = arm_b[user] and r >= swap
        click = clicks.draw(user, (tops_b if b else tops_a)[user], rng)[0]
        if r >= swap:
            shown[int(b)] += len(click)
            clicked[int(b)] += click.sum()
    return clicked / shown


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.expected_ctr", description=__doc__)
    p.add_argument("--events", type=Path, required=True)
    p.add_argument("--versions", nargs="+", default=["1", "current"])
    p.add_argument("--config", type=Path, default=Path("artifacts/train_config.json"))
    p.add_argument("--replay", help="SWAP,AFTER responses (needs two versions)")
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args(argv)
    ctx = build_context(load_config(args.config))
    encode = torch_embedder(ctx).encode
    memory = logged_clicks(args.events)
    fresh, remembering = TasteClicks(ctx), TasteClicks(ctx)
    remembering.clicked = memory
    print(f"log {args.events}: {sum(map(len, memory.values()))} clicked (user, item) pairs "
          f"of {len(memory)} users; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| version | answers | logged-clicked items in a top-10 | E[CTR], no memory "
          "| E[CTR], the log's clicks remembered |\n|---|---|---:|---:|---:|")  # fmt: skip
    tops = {}
    for ref in args.versions:
        version = resolve_version(ref)
        bundle = OfflineBundle(version.path)
        for label, exclude in (("as served", {}), ("log's clicks left out", memory)):
            top = top_k(bundle, encode, exclude)
            tops.setdefault(ref, top)
            again = np.mean([len(set(t) & memory.get(u, set())) for u, t in top.items()])
            print(f"| {version.tag} | {label} | {again:.2f} | {expected(fresh, top):.4f} "
                  f"| {expected(remembering, top):.4f} |")  # fmt: skip
    if args.replay and len(args.versions) == 2:
        swap, after = (int(x) for x in args.replay.split(","))
        a, b = (tops[ref] for ref in args.versions)
        ctr = np.array([replay(lambda: TasteClicks(ctx), memory, a, b, swap, after, s)
                        for s in range(args.seeds)])  # fmt: skip
        for s, (ca, cb) in enumerate(ctr):
            print(f"replay seed {s}: CTR A {ca:.4f}, B {cb:.4f}")
        print(f"replay mean of {args.seeds}: A {ctr[:, 0].mean():.4f}, B {ctr[:, 1].mean():.4f}; "
              f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
